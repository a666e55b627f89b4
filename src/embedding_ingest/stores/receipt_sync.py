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
The result is the same for every ledger adapter; each applies the plan atomically per receipt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
    plan = SyncPlan(changes=ReceiptChanges(image_id, receipt_number))
    changes = plan.changes
    assert changes is not None
    seen: set[str] = set()
    for item in incoming:
        seen.add(item.item_id)
        old = existing.get(item.item_id)
        if old is None:
            plan.insert.append(item)
            changes.added.append(item.item_id)
        elif old.embedding_status is EmbeddingStatus.DELETING:
            plan.overwrite.append(item)
            changes.added.append(item.item_id)
        elif old.content_hash == item.content_hash or (old.content_hash is None
                                                        and old.embed_text == item.embed_text):
            # Nothing embedded changed: keep the embedding state; refresh what is stored beside it.
            fresh = {"content_hash": item.content_hash, "metadata": item.metadata, "text": item.text}
            if any(getattr(old, name) != value for name, value in fresh.items()):
                plan.overwrite.append(old.model_copy(update=fresh))
            changes.unchanged += 1
        else:
            plan.overwrite.append(item)
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
    plan.remove.sort()
    return plan
