"""Relabelling items in place (issue 23: `labels apply`), the same for every ledger adapter.

`labels apply` names items and their new labels; nothing else of their receipt changes. So instead of
a whole-receipt sync (read every item of the receipt, twice, as full records), each ledger reads once,
inside its write, only what labels touch of the lines the named items are on (MetadataRow: ids,
status, metadata and its versions; no text), and writes only the items whose living metadata changes:
the named ones, and their lines, whose `valid_labels` is the union of their own and their words'
validated labels (receipt_sync.with_line_union). A changed item gets metadata_version + 1, exactly as a
metadata-only change by import does (receipt_sync.py): a metadata update, queued as a metadata batch
once the item is published; an item that will be embedded carries it with its embedding.
Relabelling again with the same labels changes nothing (the hashes match), so a rerun after a crash
completes the job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from embedding_ingest.living_keys import metadata_hash
from embedding_ingest.stores.receipt_sync import (
    ReceiptChanges,
    count_metadata_change,
    is_label_key,
    with_line_union,
)
from embedding_ingest.stores.records import EmbeddingStatus, ItemKind, MetadataValue

# (image_id, receipt_number, {item_id: that item's new label keys}) for ItemLedger.relabel: the label
# keys as receipts.living.label_metadata builds them ({} clears the item's labels).
ReceiptLabels = tuple[str, int, Mapping[str, Mapping[str, MetadataValue]]]


@dataclass(slots=True)
class MetadataRow:
    """What relabelling reads and writes of one item."""

    item_id: str
    line_id: int
    word_id: int | None
    status: EmbeddingStatus
    metadata: dict[str, Any]
    metadata_hash: str | None
    metadata_version: int
    metadata_queued: int

    @property
    def kind(self) -> ItemKind:
        """LINE for a line's row (no word_id), WORD for a word's."""
        return ItemKind.LINE if self.word_id is None else ItemKind.WORD

    @property
    def metadata_pending(self) -> bool:
        """A metadata update waits to be queued as a metadata batch (as EmbeddingItem.metadata_pending)."""
        return self.metadata_version > self.metadata_queued


@dataclass
class Relabelled:
    """What relabelling did to one receipt: `changes.metadata_changed` (ids whose living metadata
    changed, named items and lines alike) and `changes.relabelled`; `unknown`, the named ids the
    receipt does not hold (or holds as DELETING), sorted; `receipt_known`, whether the receipt holds
    any item that is not DELETING."""

    changes: ReceiptChanges
    unknown: list[str] = field(default_factory=list)
    receipt_known: bool = True


@dataclass
class RelabelPlan:
    """The rows to write, each as (as read, as it will be written)."""

    updates: list[tuple[MetadataRow, MetadataRow]]
    unknown: list[str]
    receipt_known: bool


def plan_relabel(rows: Iterable[MetadataRow], labels: Mapping[str, Mapping[str, MetadataValue]], *,
                 receipt_known: bool = False) -> RelabelPlan:
    """The writes that give the named items of `labels` their new label keys. `rows`: at least every
    item of the lines those items are on (rows of other lines are ignored); `receipt_known` says the
    receipt holds active items even if `rows` shows none."""
    active = {row.item_id: row for row in rows if row.status is not EmbeddingStatus.DELETING}
    lines = {row.line_id for item_id, row in active.items() if item_id in labels}
    touched = {item_id: row for item_id, row in active.items() if row.line_id in lines}
    new: dict[str, dict[str, Any]] = {}
    for item_id, row in touched.items():
        new[item_id] = row.metadata
        if item_id in labels:
            kept = {k: v for k, v in row.metadata.items() if not is_label_key(k)}
            new[item_id] = {**kept, **labels[item_id]}
    words_valid: dict[int, set[str]] = {}
    for item_id, row in touched.items():
        if row.word_id is not None:
            words_valid.setdefault(row.line_id, set()).update(new[item_id].get("valid_labels", ()))
    updates = []
    for item_id, row in sorted(touched.items()):
        metadata = new[item_id]
        if row.word_id is None:
            metadata = with_line_union(metadata, words_valid.get(row.line_id, ()))
        digest = metadata_hash(metadata)
        if digest == (row.metadata_hash or metadata_hash(row.metadata)):
            continue
        version = row.metadata_version + 1
        # an item that will be embedded carries its metadata with its embedding (receipt_sync.py)
        embedding = row.status in (EmbeddingStatus.NONE, EmbeddingStatus.FAILED)
        queued = version if embedding else row.metadata_queued
        updates.append((row, replace(row, metadata=metadata, metadata_hash=digest, metadata_version=version,
                                     metadata_queued=queued)))
    return RelabelPlan(updates=updates, unknown=sorted(set(labels) - active.keys()),
                       receipt_known=receipt_known or bool(active))


def relabelled(image_id: str, receipt_number: int, plan: RelabelPlan,
               written: Iterable[tuple[MetadataRow, MetadataRow]]) -> Relabelled:
    """The report of a relabel whose `written` updates landed (a retry's earlier ones included)."""
    changes = ReceiptChanges(image_id, receipt_number)
    for before, after in written:
        count_metadata_change(changes, after.item_id, before.metadata, after.metadata)
    changes.metadata_changed.sort()
    return Relabelled(changes=changes, unknown=plan.unknown, receipt_known=plan.receipt_known)
