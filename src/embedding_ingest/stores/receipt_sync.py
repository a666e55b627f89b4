"""Incremental sync of one receipt's items, the same for every ledger adapter (issue 10).

A receipt's import hands the ledger the complete set of items the receipt now has. Compared by
`content_hash` (what is embedded: receipts/sync.py) with what the ledger holds for that receipt:
- an item the ledger lacks is added (NONE);
- an item whose hash differs is replaced by its new content and goes back to NONE with a fresh
  attempt budget, keeping its id, so its new vector replaces the old one when published;
- an item whose hash is the same is untouched (its embedding state and tokens are kept; metadata
  that is not embedded, such as a box, is refreshed in the ledger row);
- an item the receipt no longer has becomes DELETING (out of the active set), and a deletion batch
  later carries its id to the next published version (steps/poll_deletions.py).
An item that was DELETING and comes back counts as added. Items imported before hashes existed
(content_hash None) are compared by embed_text and get their hash filled in without a state change.

Living metadata (issue 23; living_keys.py) has its own hash. An item whose content is unchanged but
whose metadata_hash differs keeps its embedding and gets metadata_version + 1: a *metadata update*,
queued as a metadata batch (submission/metadata_updates.py) once the item is published (SUCCESS),
never a provider call. An item that will be embedded (new, changed, back from DELETING, or not yet
submitted) carries its metadata with its embedding: its version counts as queued already.
Labels have two sources: the receipt file and `labels apply` (submission/labels.py). An item whose
labels were not given (`labels_given` False: a word without `labels` in the file, every line of a
file) keeps the label keys the ledger has; a line's `valid_labels` is then recomputed as its own
validated labels (its `label_<L>: true` keys) and its words' `valid_labels`.
The result is the same for every ledger adapter; each applies the plan atomically per receipt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from embedding_ingest.living_keys import LABEL_KEY_PREFIX, PLACE_KEYS, SECTION_KEY, living_part, metadata_hash
from embedding_ingest.stores.records import EmbeddingItem, EmbeddingStatus, ItemKind


@dataclass
class ReceiptChanges:
    """What a sync did to one receipt (ids sorted)."""

    image_id: str
    receipt_number: int
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    # changed items whose own text is the same: only their context (a neighbouring row or word) moved
    requeued_by_neighbours: list[str] = field(default_factory=list)
    # issue 23: unchanged content, changed living metadata (a metadata update, no tokens), and which
    # part changed: labels, place (merchant, phone, address, website), section
    metadata_changed: list[str] = field(default_factory=list)
    relabelled: int = 0
    place_changed: int = 0
    section_changed: int = 0

    def count(self, ids: list[str], kind: ItemKind) -> int:
        """How many of `ids` are of `kind` (word ids carry '#WORD#')."""
        return sum(1 for item_id in ids if ("#WORD#" in item_id) == (kind is ItemKind.WORD))


@dataclass
class SyncPlan:
    """The writes a sync needs: rows to insert, rows to overwrite, ids to mark DELETING."""

    insert: list[EmbeddingItem] = field(default_factory=list)
    overwrite: list[EmbeddingItem] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    changes: ReceiptChanges | None = None

    @property
    def writes(self) -> int:
        return len(self.insert) + len(self.overwrite) + len(self.remove)


def plan_receipt_sync(image_id: str, receipt_number: int, existing: Mapping[str, EmbeddingItem],
                      incoming: Sequence[EmbeddingItem]) -> SyncPlan:
    """Compare a receipt's items in the ledger (`existing`, by id) with its new items."""
    incoming = carry_labels(existing, incoming)
    plan = SyncPlan(changes=ReceiptChanges(image_id, receipt_number))
    changes = plan.changes
    assert changes is not None
    seen: set[str] = set()
    for item in incoming:
        seen.add(item.item_id)
        old = existing.get(item.item_id)
        if old is None:
            plan.insert.append(_embedded_with_metadata(item, 1))
            changes.added.append(item.item_id)
        elif old.embedding_status is EmbeddingStatus.DELETING:
            plan.overwrite.append(_embedded_with_metadata(item, old.metadata_version + 1))
            changes.added.append(item.item_id)
        elif old.content_hash == item.content_hash or (old.content_hash is None
                                                        and old.embed_text == item.embed_text):
            # Nothing embedded changed: keep the embedding state; refresh what is stored beside it.
            fresh: dict[str, Any] = {"content_hash": item.content_hash, "metadata": item.metadata,
                                     "text": item.text, "metadata_hash": _hash_of(item)}
            if _hash_of(old) != fresh["metadata_hash"]:
                fresh["metadata_version"] = old.metadata_version + 1
                if old.embedding_status in (EmbeddingStatus.NONE, EmbeddingStatus.FAILED):
                    fresh["metadata_queued"] = fresh["metadata_version"]  # its embedding will carry it
                count_metadata_change(changes, item.item_id, old.metadata, item.metadata)
            if any(getattr(old, name) != value for name, value in fresh.items()):
                plan.overwrite.append(old.model_copy(update=fresh))
            changes.unchanged += 1
        else:
            plan.overwrite.append(_embedded_with_metadata(item, old.metadata_version + 1))
            changes.changed.append(item.item_id)
            if old.text == item.text:
                changes.requeued_by_neighbours.append(item.item_id)
    for item_id, old in existing.items():
        if item_id not in seen and old.embedding_status is not EmbeddingStatus.DELETING:
            plan.remove.append(item_id)
            changes.removed.append(item_id)
    changes.added.sort()
    changes.changed.sort()
    changes.removed.sort()
    changes.requeued_by_neighbours.sort()
    changes.metadata_changed.sort()
    plan.remove.sort()
    return plan


def _hash_of(item: EmbeddingItem) -> str:
    """The item's metadata hash (computed for items stored before hashes existed)."""
    return item.metadata_hash or metadata_hash(item.metadata)


def _embedded_with_metadata(item: EmbeddingItem, version: int) -> EmbeddingItem:
    """An item about to be embedded: its record will carry this metadata version."""
    return item.model_copy(update={"metadata_hash": _hash_of(item), "metadata_version": version,
                                   "metadata_queued": version})


def count_metadata_change(changes: ReceiptChanges, item_id: str, old: Mapping[str, Any],
                          new: Mapping[str, Any]) -> None:
    """Record on `changes` that `item_id`'s living metadata went from `old` to `new`, and which part."""
    before, after = living_part(old), living_part(new)
    moved = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    changes.metadata_changed.append(item_id)
    changes.relabelled += any(name.startswith(LABEL_KEY_PREFIX) or name.endswith("_labels") for name in moved)
    changes.place_changed += any(name in PLACE_KEYS for name in moved)
    changes.section_changed += SECTION_KEY in moved


_LINE_UNION = "valid_labels"


def is_label_key(name: str) -> bool:
    """Whether a metadata key belongs to an item's labels (replaced whole when its labels are given)."""
    return name.startswith(LABEL_KEY_PREFIX) or name in ("valid_labels", "invalid_labels")


def carry_labels(existing: Mapping[str, EmbeddingItem], incoming: Sequence[EmbeddingItem]
                 ) -> list[EmbeddingItem]:
    """`incoming` with the ledger's labels kept where none were given, and each line's valid_labels
    recomputed from its own and its words' (module doc)."""
    carried: list[EmbeddingItem] = []
    for item in incoming:
        old = existing.get(item.item_id)
        if not item.labels_given and old is not None and old.embedding_status is not EmbeddingStatus.DELETING:
            kept = {k: v for k, v in old.metadata.items()
                    if is_label_key(k) and not (item.word_id is None and k == _LINE_UNION)}
            metadata = {**{k: v for k, v in item.metadata.items() if not is_label_key(k)}, **kept}
            item = item.model_copy(update={"metadata": metadata, "metadata_hash": None})
        carried.append(item)
    words_valid: dict[int, set[str]] = {}
    for item in carried:
        if item.word_id is not None:
            words_valid.setdefault(item.line_id, set()).update(item.metadata.get(_LINE_UNION, ()))
    result = []
    for item in carried:
        metadata = item.metadata
        if item.word_id is None:
            metadata = with_line_union(metadata, words_valid.get(item.line_id, ()))
        if metadata != item.metadata or item.metadata_hash is None:
            item = item.model_copy(update={"metadata": metadata, "metadata_hash": metadata_hash(metadata)})
        result.append(item)
    return result


def with_line_union(metadata: Mapping[str, Any], words_valid: Iterable[str]) -> dict[str, Any]:
    """A line's metadata with `valid_labels` the union of its own validated labels (its
    `label_<L>: true` keys) and its words' (`words_valid`); left out when empty."""
    own = {k.removeprefix(LABEL_KEY_PREFIX) for k, v in metadata.items()
           if k.startswith(LABEL_KEY_PREFIX) and v is True}
    union = sorted(own | set(words_valid))
    result = {k: v for k, v in metadata.items() if k != _LINE_UNION}
    if union:
        result[_LINE_UNION] = union
    return result
