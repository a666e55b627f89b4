"""Holding the publish lock for as long as a merge runs: a heartbeat thread extends our own lease
(the ledger checks owner and fencing token; lesson 9), and the lock is released whatever happens."""

from __future__ import annotations

import threading
import uuid
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


class HeldLock:
    """`with HeldLock(ledger, "lines", owner, ttl) as held:` then use `held.lease` (always the latest)."""

    def __init__(self, ledger: Ledger, name: str, owner: str, ttl_seconds: float) -> None:
        self._ledger = ledger
        self._name = name
        self._owner = owner
        self._ttl = ttl_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lease: Lease | None = None
        self.lost: LockLostError | None = None
        self.beats = 0  # successful extensions so far

    def __enter__(self) -> HeldLock:
        lease = self._ledger.acquire_lock(self._name, self._owner, self._ttl)
        if lease is None:
            holder = self._ledger.current_lease(self._name)
            who = f"{holder.owner} until {holder.expires_at:.0f}" if holder else "another writer"
            raise LockNotAcquiredError(f"lock {self._name!r} is held by {who}; retry later")
        self.lease = lease
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self._name}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        interval = max(self._ttl / 3, 0.05)
        while not self._stop.wait(interval):
            try:
                assert self.lease is not None
                self.lease = self._ledger.heartbeat(self.lease, self._ttl)
                self.beats += 1
            except LockLostError as exc:
                # The publish will be refused by its fencing token; we only stop beating.
                self.lost = exc
                logger.error("lost the lock while merging", extra={"lock": self._name, "error": str(exc)})
                return
            except Exception as exc:  # a blip: the lease is still valid for a while, keep trying
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
