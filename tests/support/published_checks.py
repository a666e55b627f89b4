"""What a user checks after a run, for any workspace of tests/support/pipeline.py: every submitted
item published exactly once, and nothing marked done before it was published."""

from __future__ import annotations

from collections import Counter

from pipeline import Workspace

from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus, ItemKind


def assert_nothing_marked_early(ws: Workspace, kind: ItemKind, published: set[str] | None = None) -> None:
    """At any moment, crash or not: SUCCESS items and COMPLETED batches are in the published snapshot
    (`published`: its ids, when the caller has just read them)."""
    published = set(ws.published_ids(kind)) if published is None else published
    succeeded = ws.item_ids(kind, EmbeddingStatus.SUCCESS)
    assert succeeded <= published, f"SUCCESS but not published: {sorted(succeeded - published)[:5]}"
    completed = ws.ledger.list_batches(statuses=[BatchStatus.COMPLETED], batch_type=kind.batch_type)
    if not completed:
        return
    members: dict[str, set[str]] = {}  # batch id -> its items, read once for every batch
    for status in EmbeddingStatus:
        for item in ws.ledger.find_items(kind, status):
            members.setdefault(item.batch_id, set()).add(item.item_id)
    for summary in completed:
        missing = members.get(summary.batch_id, set()) - published
        assert not missing, f"batch {summary.batch_id} is COMPLETED but {sorted(missing)[:5]} are unpublished"


def assert_published_exactly_once(ws: Workspace, kind: ItemKind, submitted: set[str]) -> None:
    """Every submitted item is in the published snapshot once and nothing else is; every item is
    SUCCESS, every batch COMPLETED, and no lock is left held."""
    ids = ws.published_ids(kind)
    repeats = sorted(i for i, n in Counter(ids).items() if n > 1)
    assert not repeats, f"ids published more than once: {repeats[:5]}"
    published = set(ids)
    assert published == submitted, (f"missing {sorted(submitted - published)[:5]}, "
                                    f"unexpected {sorted(published - submitted)[:5]}")
    assert ws.statuses(kind) == Counter({"SUCCESS": len(submitted)})
    not_completed = [(s.batch_id, s.status.value) for s in ws.ledger.list_batches(batch_type=kind.batch_type)
                     if s.status is not BatchStatus.COMPLETED]
    assert not not_completed, f"batches not COMPLETED: {not_completed[:5]}"
    assert_nothing_marked_early(ws, kind, published)
    assert ws.ledger.current_lease(kind.database) is None, "a lock is still held after the run"
