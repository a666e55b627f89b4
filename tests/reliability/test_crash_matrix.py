"""Crash matrix: the process dies at every step's start and before and after every object-store and
ledger write a step makes; then an operator starts a new execution, which must finish the job.

The points come from a dry run (scenarios.enumerate_injection_points) over a workspace with one
version published and two batches waiting, with thresholds lowered so the run takes every branch:
poll manifest, chunks.json, chunk groups, offloaded poll results, and pruning the older version.
"""

from __future__ import annotations

import pytest
from crash_injection import ENTRY, HEARTBEAT, Crash, CrashSwitch, WritePoint
from injection_report import record_injection_points
from published_checks import assert_nothing_marked_early, assert_published_exactly_once
from scenarios import (
    EXPIRING_LEASE_SECONDS,
    copy_of,
    enumerate_injection_points,
    expire_orphaned_lease,
    orphaned_lease,
    restarted,
    run_to_crash,
    run_with_switch,
    smaller_thresholds,
    template_home,
)

from embedding_ingest.stores.records import EmbeddingStatus, ExecutionStatus, ItemKind

KIND = ItemKind.LINE  # the workflow the heartbeat cases run

KINDS = (ItemKind.LINE, ItemKind.WORD)
# Every Lambda of a workflow that runs with items to publish; the dry run must reach them all.
COMMON_STEPS = {
    "embedding-list-pending", "embedding-split-chunks",
    "embedding-split-chunks/load_chunks_from_s3", "embedding-vector-compact/process_chunk",
    "embedding-create-chunk-groups", "embedding-create-chunk-groups/load_groups_from_s3",
    "embedding-vector-compact/merge_chunk_group", "embedding-vector-compact/final_merge",
    "embedding-mark-batches-complete",
}
EXPECTED_STEPS = {kind: COMMON_STEPS | {f"embedding-{kind.value}-poll"} for kind in KINDS}


def assert_crashed_run_aborted(ws) -> None:
    """describe-execution must not show a dead run as RUNNING forever."""
    assert not ws.ledger.list_executions(status=ExecutionStatus.RUNNING)
    assert ws.ledger.list_executions(limit=1)[0].status is ExecutionStatus.ABORTED


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "injection" not in metafunc.fixturenames:
        return
    cases = [(kind, point, when) for kind in KINDS for point, when in enumerate_injection_points(kind)]
    entries = sum(1 for _, point, _ in cases if point.method == ENTRY)
    record_injection_points(metafunc.config, "test_crash_at", len(cases),
                            f"line + word workflows: {entries} step entries, before/after "
                            f"{(len(cases) - entries) // 2} writes")
    metafunc.parametrize("injection", cases,
                         ids=[f"{kind.value}-{point.case_id(when)}" for kind, point, when in cases])


@pytest.mark.parametrize("kind", KINDS)
def test_dry_run_reaches_every_step_and_every_kind_of_write(kind: ItemKind) -> None:
    points = enumerate_injection_points(kind)
    steps = {point.step for point, _ in points}
    methods = {point.method for point, _ in points}
    print(f"\n{kind.value}: {len(points)} crash injection points over {len(steps)} steps")
    assert steps == EXPECTED_STEPS[kind]
    assert {"put_bytes", "upload_file", "delete", "update_batch", "mark_items_succeeded", "acquire_lock",
            "publish_version", "forget_version", "release_lock"} <= methods
    assert len(points) >= len(EXPECTED_STEPS[kind]) + 2 * 20  # entries + before/after of >= 20 writes


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_crash_at(injection: tuple[ItemKind, WritePoint, str], tmp_path) -> None:
    kind, point, when = injection
    crash_and_rerun(copy_of(template_home(kind), tmp_path), kind, point, when)


def crash_and_rerun(ws, kind: ItemKind, point: WritePoint, when: str, *, takeover: bool = False):
    """Die at `point` (`when` = before/after its write), restart, rerun: the crash lost no safety and
    the rerun publishes every submitted item exactly once. Returns the restarted workspace. Shared by
    the local and the AWS matrix. An orphaned lock is freed at once (expire_orphaned_lease), or with
    `takeover` left for the rerun to take over (it watches the dead lease across its lock-wait retries;
    its publish then carries a larger token). A point the run never reaches fails the case, or skips it
    where the history says why (scenarios.run_to_crash)."""
    submitted = ws.item_ids(kind) - ws.item_ids(kind, EmbeddingStatus.NONE)
    switch = CrashSwitch(target=point, when=when)

    with smaller_thresholds():
        unreached = run_to_crash(ws, switch, kind)
        if unreached is not None:  # the run must still have done what a clean run does
            assert_published_exactly_once(ws, kind, submitted)
            pytest.skip(unreached.reason)
        after_crash = restarted(ws)
        assert_crashed_run_aborted(after_crash)
        assert_nothing_marked_early(after_crash, kind)  # the crash itself lost no safety

        orphan = orphaned_lease(after_crash, kind.database) if takeover else None
        if not takeover:
            expire_orphaned_lease(after_crash, kind.database)
        record = after_crash.run(kind)
    assert record.status.value == "SUCCEEDED", f"rerun failed: {record.error}: {record.cause}"
    assert_published_exactly_once(after_crash, kind, submitted)
    if orphan is not None:
        assert after_crash.ledger.get_published(kind.database).fencing_token > orphan.fencing_token
    return after_crash


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("when", ["before", "after"])
def test_crash_in_the_lock_heartbeat(when: str, tmp_path) -> None:
    """The process dies in the heartbeat thread while the final merge holds the lock: the merge's
    publish is held back until a heartbeat has happened, so the beat surely comes first."""
    ws = copy_of(template_home(KIND), tmp_path, LOCK_TTL_SECONDS=EXPIRING_LEASE_SECONDS)
    submitted = ws.item_ids(KIND) - ws.item_ids(KIND, EmbeddingStatus.NONE)
    switch = CrashSwitch(target=WritePoint(HEARTBEAT, "heartbeat"), when=when)
    switch.hold_until = {"publish_version": switch.heartbeat_seen}
    with smaller_thresholds():
        with pytest.raises(Crash):
            run_with_switch(ws, switch, KIND)
        assert switch.fired is not None and switch.fired.method == "heartbeat"
        after_crash = restarted(ws)
        assert_crashed_run_aborted(after_crash)
        assert_nothing_marked_early(after_crash, KIND)
        orphan = orphaned_lease(after_crash, KIND.database)
        assert orphan is not None, "the holder died holding the lock"
        record = after_crash.run(KIND)  # its final merge watches the dead lease, then takes it over
    assert after_crash.ledger.get_published(KIND.database).fencing_token > orphan.fencing_token
    assert record.status.value == "SUCCEEDED", f"rerun failed: {record.error}: {record.cause}"
    assert_published_exactly_once(after_crash, KIND, submitted)
