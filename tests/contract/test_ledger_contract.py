"""What every Ledger adapter must do for items and batch summaries, observed only through the port.
Locks, the snapshot pointer and executions are in test_ledger_coordination_contract.py."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.exceptions import BatchNotFoundError, ClaimConflictError
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import (
    ACTIVE_BATCH_STATUSES,
    MAX_ATTEMPTS,
    BatchStatus,
    BatchSummary,
    BatchType,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
)


def line(n: int, **extra) -> EmbeddingItem:
    return EmbeddingItem(item_id=f"IMG#1#LINE#{n:05d}", kind=ItemKind.LINE, image_id="IMG",
                         receipt_number=1, line_id=n, text=f"line {n}", embed_text=f"<ctx> line {n}",
                         metadata={"merchant": "Shop", "y": 0.5, "n": n, "ok": True}, **extra)


def word(n: int) -> EmbeddingItem:
    return EmbeddingItem(item_id=f"IMG#1#LINE#00001#WORD#{n:05d}", kind=ItemKind.WORD, image_id="IMG",
                         receipt_number=1, line_id=1, word_id=n, text=f"w{n}", embed_text=f"w{n}")


def summary(batch_id: str, count: int, *, submitted_at: float = 1_000.0,
            batch_type: BatchType = BatchType.LINE_EMBEDDING) -> BatchSummary:
    return BatchSummary(batch_id=batch_id, batch_type=batch_type, submitted_at=submitted_at,
                        item_count=count)


def ids(*numbers: int) -> list[str]:
    return [line(n).item_id for n in numbers]


def statuses(ledger: Ledger, item_ids: list[str]) -> dict[str, EmbeddingStatus]:
    return {i: item.embedding_status for i, item in ledger.get_items(item_ids).items()}


def _claim_windows(ledger: Ledger, windows: list[tuple[str, list[str]]]) -> list[str]:
    """Try each (batch_id, item_ids) claim; return the batch ids that succeeded."""
    won = []
    for batch_id, item_ids in windows:
        try:
            ledger.claim_batch(summary(batch_id, len(item_ids)), item_ids)
            won.append(batch_id)
        except ClaimConflictError:
            pass
    return won


def _overlapping_windows(tag: str, offset: int, total: int, size: int) -> list[tuple[str, list[str]]]:
    return [(f"{tag}-{start}", ids(*range(start, min(start + size, total))))
            for start in range(offset, total, size)]


def assert_claims_disjoint_and_whole(ledger: Ledger, windows: dict[str, list[str]],
                                     won: list[str]) -> None:
    assert won, "at least one claim must succeed"
    claimed = [i for batch_id in won for i in windows[batch_id]]
    assert len(claimed) == len(set(claimed)), "an item was claimed by two batches"
    for batch_id in won:  # all or nothing: every item of a won batch is PENDING in it
        items = ledger.get_items(windows[batch_id]).values()
        assert {(it.embedding_status, it.batch_id) for it in items} == {
            (EmbeddingStatus.PENDING, batch_id)}
    losers = set(windows) - set(won)
    for batch_id in losers:
        assert ledger.get_batch(batch_id) is None


# -- items ----------------------------------------------------------------------------------------
def test_add_items_is_idempotent_and_keeps_existing(ledger: Ledger) -> None:
    assert ledger.add_items([line(1), line(2), line(3)]) == 3
    changed = line(2).model_copy(update={"text": "rewritten"})
    assert ledger.add_items(iter([changed, line(4)])) == 1
    got = ledger.get_items(ids(1, 2, 3, 4, 99))
    assert sorted(got) == ids(1, 2, 3, 4)
    assert got[ids(2)[0]].text == "line 2"
    assert got[ids(1)[0]] == line(1)  # every field round-trips, metadata types included


def test_find_and_count_items_by_kind_and_status(ledger: Ledger) -> None:
    ledger.add_items([line(3), line(1), line(2), word(1), word(2)])
    found = ledger.find_items(ItemKind.LINE, EmbeddingStatus.NONE)
    assert [i.item_id for i in found] == ids(1, 2, 3)
    assert [i.item_id for i in ledger.find_items(ItemKind.LINE, EmbeddingStatus.NONE, limit=2)] == ids(1, 2)
    ledger.claim_batch(summary("b1", 1), ids(2))
    assert [i.item_id for i in ledger.find_items(ItemKind.LINE, EmbeddingStatus.PENDING, batch_id="b1")
            ] == ids(2)
    assert ledger.find_items(ItemKind.LINE, EmbeddingStatus.PENDING, batch_id="other") == []
    lines = {s: n for s, n in ledger.count_items(ItemKind.LINE).items() if n}
    assert lines == {EmbeddingStatus.NONE: 2, EmbeddingStatus.PENDING: 1}
    everything = {s: n for s, n in ledger.count_items().items() if n}
    assert everything == {EmbeddingStatus.NONE: 4, EmbeddingStatus.PENDING: 1}


def test_claim_is_all_or_nothing(ledger: Ledger) -> None:
    ledger.add_items([line(n) for n in range(4)])
    ledger.claim_batch(summary("b1", 2), ids(0, 1))
    with pytest.raises(ClaimConflictError, match="b2"):
        ledger.claim_batch(summary("b2", 2), ids(1, 2))
    assert statuses(ledger, ids(0, 1, 2)) == dict(zip(ids(0, 1, 2), [EmbeddingStatus.PENDING] * 2
                                                      + [EmbeddingStatus.NONE], strict=True))
    assert ledger.get_batch("b2") is None
    assert ledger.get_batch("b1") == summary("b1", 2)


def test_claim_of_unknown_item_is_refused_naming_it(ledger: Ledger) -> None:
    ledger.add_items([line(0)])
    with pytest.raises(InvalidInputError, match="LINE#00042"):
        ledger.claim_batch(summary("b1", 2), ids(0, 42))
    assert statuses(ledger, ids(0)) == {ids(0)[0]: EmbeddingStatus.NONE}


def test_reclaiming_same_batch_is_a_no_op_that_keeps_progress(ledger: Ledger) -> None:
    ledger.add_items([line(0), line(1)])
    assert ledger.claim_batch(summary("b1", 2), ids(0, 1)) is True
    ledger.update_batch("b1", provider_batch_id="batch_abc", status=BatchStatus.IN_PROGRESS)
    # the submit step ran twice (or another submitter packed the same items): says it made nothing
    assert ledger.claim_batch(summary("b1", 2), ids(0, 1)) is False
    batch = ledger.get_batch("b1")
    assert (batch.provider_batch_id, batch.status) == ("batch_abc", BatchStatus.IN_PROGRESS)
    assert set(statuses(ledger, ids(0, 1)).values()) == {EmbeddingStatus.PENDING}


def test_concurrent_claims_from_threads_never_overlap(ledger: Ledger) -> None:
    ledger.add_items([line(n) for n in range(60)])
    plans = [_overlapping_windows(tag, offset, 60, 10) for tag, offset in
             [("t0", 0), ("t1", 3), ("t2", 5), ("t3", 7)]]
    start = threading.Barrier(len(plans))

    def contender(plan: list[tuple[str, list[str]]]) -> list[str]:
        start.wait()
        return _claim_windows(ledger, plan)

    with ThreadPoolExecutor(len(plans)) as pool:
        won = [b for result in pool.map(contender, plans) for b in result]
    windows = {batch_id: item_ids for plan in plans for batch_id, item_ids in plan}
    assert_claims_disjoint_and_whole(ledger, windows, won)


def test_concurrent_claims_from_processes_never_overlap(ledger: Ledger, run_in_processes) -> None:
    ledger.add_items([line(n) for n in range(60)])
    plans = [_overlapping_windows("p0", 0, 60, 10), _overlapping_windows("p1", 5, 60, 10)]
    won = run_in_processes(ledger, _claim_windows, [(plan,) for plan in plans])
    windows = {batch_id: item_ids for plan in plans for batch_id, item_ids in plan}
    assert_claims_disjoint_and_whole(ledger, windows, won[0] + won[1])


def test_release_returns_items_with_reason_and_attempt(ledger: Ledger) -> None:
    ledger.add_items([line(0), line(1), line(2)])
    ledger.claim_batch(summary("b1", 3), ids(0, 1, 2))
    assert ledger.release_items("b1", {ids(0)[0]: "input too long", ids(9)[0]: "unknown"}) == 1
    assert ledger.release_items("b1", {ids(0)[0]: "input too long"}) == 0  # second call: no-op
    released = ledger.get_items(ids(0))[ids(0)[0]]
    assert (released.embedding_status, released.attempts, released.last_error) == (
        EmbeddingStatus.NONE, 1, "input too long")
    assert statuses(ledger, ids(1, 2)) == {i: EmbeddingStatus.PENDING for i in ids(1, 2)}
    ledger.claim_batch(summary("b2", 1), ids(0))  # free to be claimed again
    assert ledger.get_items(ids(0))[ids(0)[0]].batch_id == "b2"


def test_release_ignores_items_of_another_batch(ledger: Ledger) -> None:
    ledger.add_items([line(0), line(1)])
    ledger.claim_batch(summary("b1", 1), ids(0))
    ledger.claim_batch(summary("b2", 1), ids(1))
    assert ledger.release_items("b1", {ids(1)[0]: "not yours"}) == 0
    assert ledger.get_items(ids(1))[ids(1)[0]].attempts == 0


def test_item_fails_for_good_after_max_attempts(ledger: Ledger) -> None:
    assert MAX_ATTEMPTS == 3
    ledger.add_items([line(0)])
    for attempt in range(1, MAX_ATTEMPTS + 1):
        ledger.claim_batch(summary(f"b{attempt}", 1), ids(0))
        ledger.release_items(f"b{attempt}", {ids(0)[0]: f"failure {attempt}"})
    item = ledger.get_items(ids(0))[ids(0)[0]]
    assert (item.embedding_status, item.attempts, item.last_error) == (
        EmbeddingStatus.FAILED, 3, "failure 3")
    assert item.batch_id == "b3"  # where it failed for good, on every adapter
    failed_in_b3 = ledger.find_items(ItemKind.LINE, EmbeddingStatus.FAILED, batch_id="b3")
    assert [i.item_id for i in failed_in_b3] == ids(0)
    assert ledger.find_items(ItemKind.LINE, EmbeddingStatus.NONE) == []
    with pytest.raises(ClaimConflictError):
        ledger.claim_batch(summary("b4", 1), ids(0))


def test_success_clears_the_error_of_an_earlier_attempt(ledger: Ledger) -> None:
    ledger.add_items([line(0)])
    ledger.claim_batch(summary("b1", 1), ids(0))
    ledger.release_items("b1", {ids(0)[0]: "rate limited"})
    ledger.claim_batch(summary("b2", 1), ids(0))
    assert ledger.mark_items_succeeded("b2", ids(0)) == 1
    item = ledger.get_items(ids(0))[ids(0)[0]]
    assert (item.embedding_status, item.attempts, item.last_error) == (EmbeddingStatus.SUCCESS, 1, None)


def test_mark_succeeded_is_idempotent_and_final(ledger: Ledger) -> None:
    ledger.add_items([line(0), line(1), line(2)])
    ledger.claim_batch(summary("b1", 2), ids(0, 1))
    assert ledger.mark_items_succeeded("b1", ids(0, 1, 2)) == 2  # line 2 is not in b1
    assert ledger.mark_items_succeeded("b1", ids(0, 1)) == 0
    assert ledger.release_items("b1", {ids(0)[0]: "late error"}) == 0
    assert statuses(ledger, ids(0, 1, 2)) == {ids(0)[0]: EmbeddingStatus.SUCCESS,
                                              ids(1)[0]: EmbeddingStatus.SUCCESS,
                                              ids(2)[0]: EmbeddingStatus.NONE}
    ledger.claim_batch(summary("b1", 2), ids(0, 1))  # rerun of the finished claim: still no-op
    assert statuses(ledger, ids(0))[ids(0)[0]] is EmbeddingStatus.SUCCESS


# -- batch summaries ------------------------------------------------------------------------------
def test_list_batches_oldest_first_with_filters(ledger: Ledger) -> None:
    ledger.add_items([line(n) for n in range(5)] + [word(1)])
    for batch_id, at, n in [("c", 3.0, 0), ("b", 1.0, 1), ("a", 1.0, 2), ("d", 2.0, 3), ("e", 4.0, 4)]:
        ledger.claim_batch(summary(batch_id, 1, submitted_at=at), ids(n))
    ledger.claim_batch(summary("w", 1, submitted_at=0.5, batch_type=BatchType.WORD_EMBEDDING),
                       [word(1).item_id])
    ledger.update_batch("d", status=BatchStatus.IN_PROGRESS)  # polled: must still be listed (lesson 1)
    ledger.update_batch("e", status=BatchStatus.COMPLETED)
    assert [b.batch_id for b in ledger.list_batches()] == ["w", "a", "b", "d", "c", "e"]
    active_lines = ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES, batch_type=BatchType.LINE_EMBEDDING)
    assert [b.batch_id for b in active_lines] == ["a", "b", "d", "c"]
    assert [b.batch_id for b in ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES, limit=2)] == ["w", "a"]
    assert [b.batch_id for b in ledger.list_batches(statuses=[BatchStatus.COMPLETED])] == ["e"]


def test_update_batch_changes_fields_and_stamps_time(ledger: Ledger) -> None:
    ledger.add_items([line(0)])
    ledger.claim_batch(summary("b1", 1), ids(0))
    updated = ledger.update_batch("b1", status=BatchStatus.FAILED, provider_status="failed",
                                  last_error="quota exceeded")
    assert updated == ledger.get_batch("b1")
    assert (updated.status, updated.provider_status, updated.last_error) == (
        BatchStatus.FAILED, "failed", "quota exceeded")
    assert updated.updated_at is not None and updated.submitted_at == 1_000.0
    with pytest.raises(BatchNotFoundError, match="nope"):
        ledger.update_batch("nope", status=BatchStatus.COMPLETED)
