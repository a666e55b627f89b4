"""A lock whose holder's clock is two hours fast, and which then dies, is taken over within one lease
plus one heartbeat interval of its last heartbeat, on every Ledger adapter; while it lives it is never
taken over, whatever its clock says. Deterministic: a virtual timeline drives the holder's heartbeats
(its wall clock two hours fast, its monotonic clock the timeline) and the waiter's looks, one look per
lock-wait interval as the state machine's Retry makes them, through the code the final merge runs."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from embedding_ingest.steps.lease import LOCK_WAIT_INTERVAL_SECONDS, HeldLock, RetryWatch
from embedding_ingest.stores.exceptions import LockLostError, LockNotAcquiredError, StaleFencingTokenError
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import SnapshotVersion

LEASE = 300.0
HEARTBEAT = LEASE / 3
TWO_HOURS = 7200.0
START = datetime(2026, 11, 29, 16, 0, tzinfo=UTC).timestamp()  # the true time at t = 0


def look(ledger: Ledger, waiter: RetryWatch) -> int | None:
    """One invocation of the waiting final merge: the new holder's token, or None (lock still busy)."""
    try:
        with HeldLock(ledger, "lines", f"final-merge:{waiter.waiter}", LEASE, watch=waiter,
                      now=lambda: START) as held:
            return held.lease.fencing_token
    except LockNotAcquiredError as busy:
        message = str(busy)
        # the holder's time as it reported it (two hours ahead of the true 16:xx), never an epoch number
        expected = (r"held by holder-two-hours-fast \(token 1; last heartbeat 2026-11-29T1[89]:\d\d:\d\dZ "
                    r"by the holder's clock\); unchanged here for \d+ s of its 300 s lease")
        assert re.search(expected, message), message
        return None


def run_timeline(ledger: Ledger, dies_at: float | None, until: float) -> tuple[float | None, float, int]:
    """(time of the takeover or None, time of the holder's last heartbeat, the new holder's token)."""
    holder = ledger.acquire_lock("lines", "holder-two-hours-fast", LEASE, now=START + TWO_HOURS)
    waiter = RetryWatch(ledger, "exec-waiting")
    beats = [n * HEARTBEAT for n in range(1, int(until / HEARTBEAT) + 1)
             if dies_at is None or n * HEARTBEAT <= dies_at]
    looks = [50 + n * LOCK_WAIT_INTERVAL_SECONDS for n in range(int(until / LOCK_WAIT_INTERVAL_SECONDS))]
    last_beat = 0.0
    for t, what in sorted([(t, "beat") for t in beats] + [(t, "look") for t in looks]):
        if what == "beat":
            holder = ledger.heartbeat(holder, now=START + TWO_HOURS + t)
            last_beat = t
        elif (token := look(ledger, waiter)) is not None:
            with pytest.raises((LockLostError, StaleFencingTokenError)):  # the zombie learns, or is refused
                ledger.heartbeat(holder, now=START + TWO_HOURS + t)
                ledger.publish_version(SnapshotVersion(
                    database="lines", version="zombie", key="lines/snapshot/versions/zombie/", count=1,
                    dimensions=4, model="m", published_at=START + t, fencing_token=holder.fencing_token),
                    expected_current=None, lease=holder)
            return t, last_beat, token
    return None, last_beat, 0


def test_a_holder_two_hours_fast_then_dead_is_taken_over_within_a_lease_and_a_heartbeat(ledger: Ledger):
    taken_at, last_beat, token = run_timeline(ledger, dies_at=1800, until=4000)

    assert last_beat == 1800 and taken_at is not None
    assert taken_at - last_beat <= LEASE + HEARTBEAT  # here 2150 - 1800 = 350 s
    assert taken_at - last_beat >= LEASE  # and never before a whole lease went by unchanged
    assert token == 2
    assert ledger.get_published("lines") is None  # the zombie's publish was refused


def test_a_live_holder_is_never_taken_over_whatever_its_clock_says(ledger: Ledger):
    taken_at, last_beat, _ = run_timeline(ledger, dies_at=None, until=20 * LEASE)

    assert taken_at is None and last_beat == 20 * LEASE
    assert ledger.current_lease("lines").owner == "holder-two-hours-fast"
