"""Errors raised by store adapters. Adapters translate backend errors into these (`raise ... from exc`)."""

from __future__ import annotations

from embedding_ingest.exceptions import TerminalError, TransientError


class StoreUnavailableError(TransientError):
    """The backend could not be reached or throttled us."""


class ObjectNotFoundError(TerminalError):
    def __init__(self, key: str, location: str = "") -> None:
        super().__init__(f"object not found: {key!r}" + (f" in {location}" if location else ""))
        self.key = key


class CorruptObjectError(TerminalError):
    """An object exists but cannot be read as what it claims to be (bad JSON, checksum mismatch)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"corrupt object {key!r}: {reason}")
        self.key = key
        self.reason = reason


class PreconditionFailedError(TransientError):
    """A conditional put lost: the object exists (create-if-absent) or changed (compare-and-swap)."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(f"precondition failed for {key!r}" + (f": {detail}" if detail else ""))
        self.key = key


class ClaimConflictError(TransientError):
    """Some items of a claim were no longer NONE (claimed concurrently); nothing was changed."""


class BatchNotFoundError(TerminalError):
    def __init__(self, batch_id: str) -> None:
        super().__init__(f"batch summary not found: {batch_id!r}")
        self.batch_id = batch_id


class LockNotAcquiredError(TransientError):
    """Someone else holds the lock (alive, or not yet watched for a whole lease)."""


class LockLostError(TransientError):
    """The lease is no longer ours (taken over, broken or released): the holder must stop writing."""


class StaleFencingTokenError(LockLostError):
    """A write carried a fencing token older than the lock's current one and was refused."""


class PointerConflictError(TransientError):
    """The published pointer moved since the snapshot was built from it (compare-and-swap lost)."""


class ExecutionAlreadyExistsError(TerminalError):
    pass
