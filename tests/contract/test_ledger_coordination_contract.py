"""What every Ledger adapter must do for locks, the published-snapshot pointer and executions."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from embedding_ingest.stores.exceptions import (
    ExecutionAlreadyExistsError,
    LockLostError,
    PointerConflictError,
    StaleFencingTokenError,
)
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import (
    ExecutionRecord,
    ExecutionStatus,
    HistoryEvent,
    Lease,
    SnapshotVersion,
)


def version(name: str, lease: Lease, *, at: float, parent: str | None = None,
            database: str = "lines") -> SnapshotVersion:
    return SnapshotVersion(database=database, version=name, key=f"snapshots/{database}/{name}/",
                           count=10, dimensions=384, model="m", published_at=at,
                           fencing_token=lease.fencing_token, parent_version=parent)


# -- locks ----------------------------------------------------------------------------------------
def test_lock_excludes_a_second_owner_however_long_its_lease(ledger: Ledger) -> None:
    lease = ledger.acquire_lock("lines", "exec-A", 0.001)
    assert lease is not None and (lease.name, lease.owner) == ("lines", "exec-A")
    assert (lease.lease_seconds, lease.heartbeat_seconds) == (0.001, 0.001 / 3)
    time.sleep(0.01)  # well past its lease: still held, since no waiter watched it (no deadline exists)
    assert ledger.acquire_lock("lines", "exec-B", 30) is None
    assert ledger.current_lease("lines") == lease
    assert ledger.acquire_lock("words", "exec-B", 30) is not None  # other locks are independent


def test_only_one_of_many_threads_acquires(ledger: Ledger) -> None:
    start = threading.Barrier(6, timeout=60)

    def contender(n: int) -> Lease | None:
        start.wait()
        return ledger.acquire_lock("lines", f"exec-{n}", 30)

    with ThreadPoolExecutor(6) as pool:
        leases = [lease for lease in pool.map(contender, range(6)) if lease is not None]
    assert len(leases) == 1
    assert ledger.current_lease("lines") == leases[0]


def test_a_watched_lease_is_taken_over_at_its_record_version_with_a_higher_token(ledger: Ledger) -> None:
    first = ledger.acquire_lock("lines", "exec-A", 30)
    assert ledger.acquire_lock("lines", "exec-B", 30, takeover_rvn="some-other-version") is None
    second = ledger.acquire_lock("lines", "exec-B", 30, takeover_rvn=first.rvn)
    assert second is not None and second.fencing_token > first.fencing_token and second.rvn != first.rvn
    with pytest.raises(LockLostError, match="lines"):
        ledger.heartbeat(first)  # the old holder learns it must stop
    assert ledger.release_lock(first) is False
    assert ledger.current_lease("lines") == second
    # A second waiter that watched the same (old) version loses: only one takeover per version
    assert ledger.acquire_lock("lines", "exec-C", 30, takeover_rvn=first.rvn) is None


def test_a_heartbeat_renews_the_record_version_and_foils_a_takeover(ledger: Ledger) -> None:
    lease = ledger.acquire_lock("lines", "exec-A", 30, now=1_000_000_000.0)
    renewed = ledger.heartbeat(lease, now=1_000_000_042.0)
    assert (renewed.fencing_token, renewed.owner) == (lease.fencing_token, lease.owner)
    assert renewed.rvn != lease.rvn
    assert (renewed.acquired_at, renewed.heartbeat_at) == ("2001-09-09T01:46:40Z", "2001-09-09T01:47:22Z")
    assert ledger.current_lease("lines") == renewed
    assert ledger.acquire_lock("lines", "exec-B", 30, takeover_rvn=lease.rvn) is None  # it moved on
    impostor = renewed.model_copy(update={"owner": "exec-B"})
    with pytest.raises(LockLostError):
        ledger.heartbeat(impostor)
    assert ledger.current_lease("lines") == renewed


def test_release_only_by_owner(ledger: Ledger) -> None:
    lease = ledger.acquire_lock("lines", "exec-A", 30)
    assert ledger.release_lock(lease.model_copy(update={"owner": "exec-B"})) is False
    assert ledger.current_lease("lines") == lease
    assert ledger.release_lock(lease) is True
    assert ledger.current_lease("lines") is None
    assert ledger.release_lock(lease) is False
    with pytest.raises(LockLostError):
        ledger.heartbeat(lease)
    assert ledger.acquire_lock("lines", "exec-B", 30, takeover_rvn=lease.rvn) is not None  # free anyway


def test_fencing_token_increases_across_releases_and_breaks(ledger: Ledger) -> None:
    tokens = []
    for owner in ["a", "b", "a", "c"]:
        lease = ledger.acquire_lock("words", owner, 30)
        tokens.append(lease.fencing_token)
        assert ledger.release_lock(lease)
    held = ledger.acquire_lock("words", "d", 30)
    assert ledger.break_lock("words", by="operator", fencing_token=held.fencing_token)
    tokens += [held.fencing_token, ledger.acquire_lock("words", "e", 30).fencing_token]
    assert tokens == sorted(tokens) and len(set(tokens)) == 6


def test_a_break_needs_the_watched_version_or_the_token(ledger: Ledger) -> None:
    lease = ledger.acquire_lock("lines", "exec-A", 30)
    renewed = ledger.heartbeat(lease)
    assert not ledger.break_lock("lines", by="operator", rvn=lease.rvn)  # renewed since: alive
    assert not ledger.break_lock("lines", by="operator", fencing_token=lease.fencing_token + 1)
    assert ledger.current_lease("lines") == renewed
    assert ledger.break_lock("lines", by="operator", rvn=renewed.rvn)
    assert ledger.current_lease("lines") is None
    assert not ledger.break_lock("lines", by="operator", rvn=renewed.rvn)  # nothing left to break
    with pytest.raises(LockLostError):
        ledger.heartbeat(renewed)


def test_a_waiters_count_of_waits_follows_one_record_version(ledger: Ledger) -> None:
    assert [ledger.note_lock_wait("lines", "exec-W", "v1") for _ in range(3)] == [0, 1, 2]
    assert ledger.note_lock_wait("lines", "exec-X", "v1") == 0  # each waiter counts its own
    assert ledger.note_lock_wait("lines", "exec-W", "v2") == 0  # the holder renewed: start again
    assert ledger.note_lock_wait("words", "exec-W", "v2") == 0  # each lock apart
    ledger.forget_lock_wait("lines", "exec-W")
    assert ledger.note_lock_wait("lines", "exec-W", "v2") == 0


# -- published snapshot pointer ------------------------------------------------------------------
def test_publish_moves_pointer_and_keeps_history(ledger: Ledger) -> None:
    assert ledger.get_published("lines") is None
    lease = ledger.acquire_lock("lines", "exec-A", 30)
    v1 = version("v1", lease, at=100.0)
    ledger.publish_version(v1, expected_current=None, lease=lease)
    assert ledger.get_published("lines") == v1
    v2 = version("v2", lease, at=200.0, parent="v1")
    ledger.publish_version(v2, expected_current="v1", lease=lease)
    assert ledger.get_published("lines") == v2
    assert ledger.list_versions("lines") == [v2, v1]
    assert ledger.list_versions("words") == []
    ledger.forget_version("lines", "v1")
    assert ledger.list_versions("lines") == [v2]


def test_publish_with_wrong_expected_current_is_refused(ledger: Ledger) -> None:
    lease = ledger.acquire_lock("lines", "exec-A", 30)
    v1 = version("v1", lease, at=100.0)
    ledger.publish_version(v1, expected_current=None, lease=lease)
    with pytest.raises(PointerConflictError, match="v1"):
        ledger.publish_version(version("v2", lease, at=200.0), expected_current=None, lease=lease)
    with pytest.raises(PointerConflictError):
        ledger.publish_version(version("v3", lease, at=300.0), expected_current="v0", lease=lease)
    assert ledger.get_published("lines") == v1
    assert [v.version for v in ledger.list_versions("lines")] == ["v1"]


def test_publish_with_a_taken_over_or_broken_lease_is_refused(ledger: Ledger) -> None:
    old = ledger.acquire_lock("lines", "exec-A", 30)
    new = ledger.acquire_lock("lines", "exec-B", 30, takeover_rvn=old.rvn)
    with pytest.raises(StaleFencingTokenError):
        ledger.publish_version(version("late", old, at=100.0), expected_current=None, lease=old)
    assert ledger.get_published("lines") is None
    ledger.publish_version(version("fresh", new, at=101.0), expected_current=None, lease=new)
    assert ledger.get_published("lines").version == "fresh"
    assert ledger.break_lock("lines", by="operator", rvn=new.rvn)
    with pytest.raises(StaleFencingTokenError):
        ledger.publish_version(version("after", new, at=102.0), expected_current="fresh", lease=new)


def test_publish_with_a_released_or_foreign_lease_is_refused(ledger: Ledger) -> None:
    released = ledger.acquire_lock("lines", "exec-A", 30)
    ledger.release_lock(released)
    with pytest.raises(StaleFencingTokenError):
        ledger.publish_version(version("v1", released, at=1.0), expected_current=None, lease=released)
    words_lease = ledger.acquire_lock("words", "exec-A", 30)  # a lease on another lock
    with pytest.raises(StaleFencingTokenError):
        ledger.publish_version(version("v1", words_lease, at=1.0), expected_current=None,
                               lease=words_lease)
    assert ledger.get_published("lines") is None


def test_rollback_republishes_an_older_version(ledger: Ledger) -> None:
    lease = ledger.acquire_lock("lines", "exec-A", 30)
    v1 = version("v1", lease, at=100.0)
    ledger.publish_version(v1, expected_current=None, lease=lease)
    ledger.publish_version(version("v2", lease, at=200.0, parent="v1"), expected_current="v1",
                           lease=lease)
    back = v1.model_copy(update={"published_at": 300.0})
    ledger.publish_version(back, expected_current="v2", lease=lease)
    assert ledger.get_published("lines") == back
    assert [v.version for v in ledger.list_versions("lines")] == ["v1", "v2"]


# -- executions -----------------------------------------------------------------------------------
def execution(name: str, *, workflow: str = "line", start: float = 1.0,
              status: ExecutionStatus = ExecutionStatus.RUNNING) -> ExecutionRecord:
    machine = f"arn:aws:states:local:000000000000:stateMachine:{workflow}-ingest"
    return ExecutionRecord(execution_arn=f"{machine.replace('stateMachine', 'execution')}:{name}",
                           name=name, state_machine_arn=machine, workflow=workflow, status=status,
                           start_date=start, input='{"a": 1}')


def test_execution_round_trip_by_arn_and_name(ledger: Ledger) -> None:
    record = execution("run-1")
    ledger.create_execution(record)
    assert ledger.get_execution(record.execution_arn) == record
    assert ledger.get_execution("run-1") == record
    assert ledger.get_execution("run-unknown") is None
    with pytest.raises(ExecutionAlreadyExistsError, match="run-1"):
        ledger.create_execution(record)
    done = record.model_copy(update={"status": ExecutionStatus.FAILED, "stop_date": 5.0,
                                     "error": "ClaimConflictError", "cause": "batch b1"})
    ledger.update_execution(done)
    assert ledger.get_execution(record.execution_arn) == done


def test_list_executions_newest_first_with_filters(ledger: Ledger) -> None:
    records = [execution("l1", start=1.0), execution("w1", workflow="word", start=2.0),
               execution("l2", start=3.0, status=ExecutionStatus.SUCCEEDED), execution("l3", start=4.0)]
    for record in records:
        ledger.create_execution(record)
    assert [r.name for r in ledger.list_executions()] == ["l3", "l2", "w1", "l1"]
    assert [r.name for r in ledger.list_executions(workflow="line")] == ["l3", "l2", "l1"]
    assert [r.name for r in ledger.list_executions(status=ExecutionStatus.RUNNING)] == ["l3", "w1", "l1"]
    assert [r.name for r in ledger.list_executions(workflow="line", status=ExecutionStatus.RUNNING,
                                                   limit=1)] == ["l3"]


def test_history_events_come_back_in_order_per_execution(ledger: Ledger) -> None:
    a, b = execution("a"), execution("b")
    ledger.create_execution(a)
    ledger.create_execution(b)
    events = [HistoryEvent(id=n, previous_event_id=n - 1, timestamp=float(n), type=kind,
                           details={"name": f"state{n}"} if kind != "ExecutionStarted" else {})
              for n, kind in [(1, "ExecutionStarted"), (2, "TaskStateEntered"), (3, "TaskStateExited")]]
    ledger.append_events(a.execution_arn, events[2:])
    ledger.append_events(a.execution_arn, events[:2])
    ledger.append_events(b.execution_arn, events[:1])
    assert ledger.get_events(a.execution_arn) == events
    assert ledger.get_events(b.execution_arn) == events[:1]
    assert ledger.get_events("arn:unknown") == []
