"""Holding the publish lock for as long as a merge runs, and deciding when a lock's holder is dead.

No clock of one machine is compared with another's (the Amazon DynamoDB Lock Client's design): a lease
records no deadline, only a record version (rvn) that its holder's heartbeat renews every third of the
lease. A waiter that sees the same rvn stay unchanged for one whole lease, measured on its own clock,
may take the lock over, with a write conditioned on that rvn (records.Lease, the ledgers' acquire_lock).
The holder's own clock shows only in `acquired_at` / `heartbeat_at`, for people.

The final merge's waiter is the state machine's lock-wait Retry: each look is one invocation, and the
fixed wait before the next one (LOCK_WAIT_INTERVAL_SECONDS, no backoff, no jitter) is its clock. The
count of those waits is kept in the ledger per waiter (RetryWatch), so a dead holder's lock is taken
over within one lease plus one interval of its last heartbeat, however wrong any clock is. Fencing is
unchanged: every acquisition gets a larger token, and a publish under an older one is refused.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType

from embedding_ingest.config import LOCK_LEASE_MAX_SECONDS
from embedding_ingest.steps.logs import logger
from embedding_ingest.stores.exceptions import LockLostError, LockNotAcquiredError
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import Lease

# The longest a holder may legitimately keep the lock: its merge runs in embedding-vector-compact,
# whose timeout is Lambda's maximum (aws/function_table.py; a test keeps the two equal).
LONGEST_MERGE_SECONDS = 900
HEARTBEATS_PER_LEASE = 3
# A waiter looks again this often (the state machine's lock-wait Retry interval): the heartbeat of the
# longest lease, so a live holder's record version changes between any two looks.
LOCK_WAIT_INTERVAL_SECONDS = LOCK_LEASE_MAX_SECONDS // HEARTBEATS_PER_LEASE
# Outlast a merge that just started, then a holder that died at its end (one lease unchanged, seen
# within one interval of its last heartbeat).
LOCK_WAIT_BUDGET_SECONDS = LONGEST_MERGE_SECONDS + LOCK_LEASE_MAX_SECONDS + LOCK_WAIT_INTERVAL_SECONDS


def unique_owner(purpose: str, batch_id: str) -> str:
    """The owner names who holds the lock; the lock's *name* never contains the execution (lesson 9)."""
    return f"{purpose}:{batch_id}:{uuid.uuid4().hex}"


def describe_holder(lease: Lease) -> str:
    """`owner (token N; last heartbeat <ISO> by the holder's clock)`: never an epoch number."""
    return (f"{lease.owner} (token {lease.fencing_token}; last heartbeat {lease.heartbeat_at or 'unknown'} "
            "by the holder's clock)")


class RetryWatch:
    """A waiter that looks once per invocation, each look `interval` seconds after the last (a state
    machine's fixed Retry wait). Its count of waits since it first saw the holder's rvn, kept in the
    ledger under `waiter` (stable across the retries: the execution), is its clock."""

    def __init__(self, ledger: Ledger, waiter: str, interval: float = LOCK_WAIT_INTERVAL_SECONDS) -> None:
        self._ledger, self.waiter, self.interval = ledger, waiter, interval
        self.unchanged_seconds = 0.0  # how long the last look knows the holder's rvn to be unchanged

    def takeover_rvn(self, held: Lease) -> str | None:
        """The rvn to take over from once it stayed unchanged for `held`'s whole lease, else None (and
        this look is counted: the caller raises LockNotAcquiredError, and the Retry waits `interval`)."""
        waits = self._ledger.note_lock_wait(held.name, self.waiter, held.rvn)
        self.unchanged_seconds = waits * self.interval
        return held.rvn if self.unchanged_seconds >= held.lease_seconds else None

    def done(self, name: str) -> None:
        self._ledger.forget_lock_wait(name, self.waiter)


class HeldLock:
    """`with HeldLock(ledger, "lines", owner, lease_seconds) as held:` then use `held.lease` (always the
    latest). A heartbeat thread renews the lease every `heartbeat_seconds`. With `watch`, a busy lock
    whose holder's rvn stayed unchanged for a whole lease is taken over; without one (the CLI, the
    console) a busy lock is refused at once, naming its holder and `locks break`.

    `now` is this holder's wall clock (shown in the lease only), `monotonic` its clock for its own view
    of the lease: once no heartbeat has succeeded for a whole lease, `lost` is set and beating stops (a
    waiter may have taken over; the publish's fencing check then refuses us)."""

    def __init__(self, ledger: Ledger, name: str, owner: str, lease_seconds: float, *,
                 watch: RetryWatch | None = None, now: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ledger = ledger
        self._name = name
        self._owner = owner
        self._lease_seconds = lease_seconds
        self._watch = watch
        self._now, self._monotonic = now, monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_beat = 0.0
        self.lease: Lease | None = None
        self.lost: LockLostError | None = None
        self.beats = 0  # successful renewals so far
        self.took_over_from: Lease | None = None

    def __enter__(self) -> HeldLock:
        self.lease = self._acquire()
        self._last_beat = self._monotonic()
        self._thread = threading.Thread(target=self._beat_until_stopped, name=f"heartbeat-{self._name}",
                                        daemon=True)
        self._thread.start()
        return self

    def _acquire(self) -> Lease:
        lease = self._ledger.acquire_lock(self._name, self._owner, self._lease_seconds, now=self._now())
        if lease is not None:
            self._done_waiting()
            return lease
        held = self._ledger.current_lease(self._name)
        if held is None:  # released between our two reads: try once more, as a fresh acquirer
            lease = self._ledger.acquire_lock(self._name, self._owner, self._lease_seconds, now=self._now())
        elif self._watch is not None and (rvn := self._watch.takeover_rvn(held)) is not None:
            lease = self._ledger.acquire_lock(self._name, self._owner, self._lease_seconds, takeover_rvn=rvn,
                                              now=self._now())
            if lease is not None:
                self.took_over_from = held
                logger.warning("took over a lock whose holder stopped renewing it", extra={
                    "lock": self._name, "holder": held.owner, "holder_token": held.fencing_token,
                    "unchanged_seconds": self._watch.unchanged_seconds, "token": lease.fencing_token})
        if lease is not None:
            self._done_waiting()
            return lease
        raise LockNotAcquiredError(self._busy_message(held))

    def _done_waiting(self) -> None:
        if self._watch is not None:
            self._watch.done(self._name)

    def _busy_message(self, held: Lease | None) -> str:
        if held is None:
            return f"lock {self._name!r} was taken by another writer at the same moment; retry later"
        text = f"lock {self._name!r} is held by {describe_holder(held)}"
        if self._watch is not None:
            return (f"{text}; unchanged here for {self._watch.unchanged_seconds:.0f} s of its "
                    f"{held.lease_seconds:.0f} s lease; retry later")
        return (f"{text}; retry later, or if its holder is dead: embedding-ingest locks break "
                f"{self._name}")

    def beat(self) -> None:
        """Renew the lease once (the heartbeat thread's step; tests drive it by hand)."""
        assert self.lease is not None
        self.lease = self._ledger.heartbeat(self.lease, now=self._now())
        self._last_beat = self._monotonic()
        self.beats += 1

    def _beat_until_stopped(self) -> None:
        assert self.lease is not None
        interval = max(self.lease.heartbeat_seconds, 0.05)
        while not self._stop.wait(interval):
            try:
                self.beat()
            except LockLostError as exc:
                # The publish will be refused by its fencing token; we only stop beating.
                self.lost = exc
                logger.error("lost the lock while merging", extra={"lock": self._name, "error": str(exc)})
                return
            except Exception as exc:  # a blip: the lease survives two missed beats
                silent = self._monotonic() - self._last_beat
                if silent >= self._lease_seconds:
                    self.lost = LockLostError(f"lock {self._name!r}: no heartbeat succeeded for {silent:.0f} "
                                              "s, a whole lease; another writer may hold it now")
                    logger.error("lease lapsed on this holder's clock", extra={"lock": self._name,
                                                                               "error": repr(exc)})
                    return
                logger.warning("heartbeat failed", extra={"lock": self._name, "error": repr(exc)})

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lease is not None and self.lost is None:
            released = self._ledger.release_lock(self.lease)
            if not released:
                logger.warning("lock was not ours to release any more", extra={"lock": self._name})


WATCH_HEARTBEATS = 1.5  # how long `locks break` watches a lease, in its holder's heartbeat intervals


def break_dead_lock(ledger: Ledger, name: str, *, by: str, force: bool = False,
                    sleep: Callable[[float], None] = time.sleep) -> tuple[str, Lease | None]:
    """Free lock `name` from a holder that died: (outcome, the lease broken or found). Outcomes:
    "free" (nothing held it), "released" (its holder released it while we watched), "alive" (its rvn
    changed while we watched 1.5 heartbeat intervals on our own clock: refused), "broken", and "raced"
    (it changed hands between our look and our write). `force` breaks without watching, by fencing
    token. The fencing counter stays, so the old holder's publish is refused either way."""
    held = ledger.current_lease(name)
    if held is None:
        return "free", None
    if force:
        broken = ledger.break_lock(name, by=by, fencing_token=held.fencing_token)
        return ("broken" if broken else "raced"), held
    sleep(held.heartbeat_seconds * WATCH_HEARTBEATS)
    now = ledger.current_lease(name)
    if now is None:
        return "released", held
    if now.rvn != held.rvn or now.fencing_token != held.fencing_token:
        return "alive", now
    return ("broken" if ledger.break_lock(name, by=by, rvn=held.rvn) else "raced"), held
