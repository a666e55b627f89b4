"""SqliteLedger specifics beyond the shared contract: processes, busy/corrupt files, validation."""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.exceptions import CorruptObjectError, StoreUnavailableError
from embedding_ingest.stores.records import (
    BatchSummary,
    BatchType,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
    SnapshotVersion,
)
from embedding_ingest.stores.sqlite_ledger import SqliteLedger


def item(n: int, kind: ItemKind = ItemKind.LINE) -> EmbeddingItem:
    return EmbeddingItem(item_id=f"{kind.value}-{n:05d}", kind=kind, image_id="IMG", receipt_number=1,
                         line_id=n, word_id=n if kind is ItemKind.WORD else None, text="t",
                         embed_text="t")


def summary(batch_id: str, count: int) -> BatchSummary:
    return BatchSummary(batch_id=batch_id, batch_type=BatchType.LINE_EMBEDDING,
                        submitted_at=time.time(), item_count=count)


@pytest.fixture
def ledger(tmp_path: Path) -> SqliteLedger:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    yield ledger
    ledger.close()


def _add_in_child(ledger: SqliteLedger, queue) -> None:
    try:
        queue.put(ledger.add_items([item(100), item(101)]))
    except BaseException as exc:
        queue.put(repr(exc))


def test_same_instance_keeps_working_after_fork(ledger: SqliteLedger) -> None:
    ledger.add_items([item(1)])  # the parent has an open connection before forking
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_add_in_child, args=(ledger, queue))
    child.start()
    assert queue.get(timeout=60) == 2
    child.join(timeout=30)
    assert sorted(ledger.get_items([item(1).item_id, item(100).item_id, item(101).item_id])) == [
        item(1).item_id, item(100).item_id, item(101).item_id]


def test_pickles_by_path(ledger: SqliteLedger) -> None:
    ledger.add_items([item(1)])
    reopened = pickle.loads(pickle.dumps(ledger))
    assert reopened.path == ledger.path
    assert list(reopened.get_items([item(1).item_id])) == [item(1).item_id]
    reopened.close()


def test_many_threads_share_one_instance(ledger: SqliteLedger) -> None:
    def add(start: int) -> int:
        return ledger.add_items(item(n) for n in range(start, start + 300))

    with ThreadPoolExecutor(4) as pool:
        added = list(pool.map(add, [0, 300, 600, 150]))  # the last overlaps two others
    assert sum(added) == 900
    assert ledger.count_items(ItemKind.LINE)[EmbeddingStatus.NONE] == 900


def test_writer_held_elsewhere_gives_a_transient_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite3"
    ledger = SqliteLedger(path, busy_timeout_ms=50)
    ledger.add_items([item(1)])
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailableError, match="busy.sqlite3") as caught:
            ledger.add_items([item(2)])
        assert caught.value.transient
        # WAL: readers are not blocked by the writer.
        assert list(ledger.get_items([item(1).item_id])) == [item(1).item_id]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert ledger.add_items([item(2)]) == 1
    ledger.close()


def test_a_file_that_is_not_a_database_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"this is not an SQLite database, just some text " * 100)
    with pytest.raises(CorruptObjectError, match="ledger.sqlite3"):
        SqliteLedger(path)


def test_claim_refuses_items_of_the_other_kind_and_empty_claims(ledger: SqliteLedger) -> None:
    ledger.add_items([item(1), item(2, ItemKind.WORD)])
    with pytest.raises(InvalidInputError, match="word-00002"):
        ledger.claim_batch(summary("b1", 2), [item(1).item_id, item(2, ItemKind.WORD).item_id])
    with pytest.raises(InvalidInputError, match="b2"):
        ledger.claim_batch(summary("b2", 0), [])
    assert ledger.count_items()[EmbeddingStatus.PENDING] == 0


def test_update_batch_rejects_bad_changes_naming_the_batch(ledger: SqliteLedger) -> None:
    ledger.add_items([item(1)])
    ledger.claim_batch(summary("b1", 1), [item(1).item_id])
    with pytest.raises(InvalidInputError, match="b1"):
        ledger.update_batch("b1", status="NOT-A-STATUS")
    with pytest.raises(InvalidInputError, match="b1"):
        ledger.update_batch("b1", no_such_field=1)
    assert ledger.get_batch("b1").updated_at is None  # nothing was written


def test_the_published_version_cannot_be_forgotten(ledger: SqliteLedger) -> None:
    lease = ledger.acquire_lock("lines", "me", 30)
    ledger.publish_version(SnapshotVersion(database="lines", version="v1", key="s/v1/", count=1,
                                           dimensions=3, model="m", published_at=1.0,
                                           fencing_token=lease.fencing_token),
                           expected_current=None, lease=lease)
    with pytest.raises(InvalidInputError, match="v1"):
        ledger.forget_version("lines", "v1")
    assert ledger.get_published("lines").version == "v1"


def test_a_lock_lease_must_be_positive(ledger: SqliteLedger) -> None:
    with pytest.raises(InvalidInputError, match="lease_seconds"):
        ledger.acquire_lock("lines", "me", 0)
    assert ledger.current_lease("lines") is None


def test_close_then_use_reopens(ledger: SqliteLedger) -> None:
    ledger.add_items([item(1)])
    with ThreadPoolExecutor(1) as pool:
        from_thread = pool.submit(ledger.get_items, [item(1).item_id]).result(timeout=60)
    assert list(from_thread) == [item(1).item_id]
    ledger.close()  # closes the worker thread's connection too
    assert list(ledger.get_items([item(1).item_id])) == [item(1).item_id]


def _read_together(all_started: threading.Barrier, ledger: SqliteLedger, item_id: str) -> dict:
    all_started.wait()
    return ledger.get_items([item_id])


def test_short_lived_threads_do_not_leak_file_handles(ledger: SqliteLedger) -> None:
    me = psutil.Process()

    def handles() -> int:
        return sum(1 for f in me.open_files() if f.path.startswith(str(ledger.path)))

    ledger.add_items([item(1)])
    for _ in range(3):  # each round: 8 fresh threads, each opening its own connection
        # The barrier holds every task until all 8 run at once, so the pool cannot reuse a thread.
        all_started = threading.Barrier(8, timeout=60)

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(_read_together, all_started, ledger, item(1).item_id) for _ in range(8)]
            assert all(list(f.result(timeout=60)) == [item(1).item_id] for f in futures)
    gc.collect()
    # SQLite keeps a few closed connections' descriptors for reuse (POSIX lock rules), so the
    # count is small and bounded, not zero; a leak would leave at least one per thread (24+).
    assert handles() < 12, f"{handles()} handles still open on {ledger.path} after 24 finished threads"


def test_a_lease_written_before_record_versions_can_be_watched_and_taken_over(tmp_path: Path) -> None:
    """A ledger upgraded while a lock was held (an expires_at row, no rvn): the lease reads back with a
    fixed record version, which a waiter can watch and take over."""
    path = tmp_path / "old.sqlite3"
    SqliteLedger(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO locks (name, owner, fencing_token, expires_at) "
                     "VALUES ('lines', 'old', 7, 1e9)")
    ledger = SqliteLedger(path)
    try:
        held = ledger.current_lease("lines")
        assert (held.owner, held.fencing_token, held.rvn) == ("old", 7, "legacy-7")
        assert ledger.acquire_lock("lines", "new", 30) is None
        taken = ledger.acquire_lock("lines", "new", 30, takeover_rvn=held.rvn)
        assert taken is not None and taken.fencing_token == 8
    finally:
        ledger.close()
