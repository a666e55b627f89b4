"""Ports: what the steps need from storage. Every adapter (local dir, S3, SQLite, DynamoDB) implements
these and passes the same contract tests in tests/contract/."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from embedding_ingest.stores.exceptions import CorruptObjectError
from embedding_ingest.stores.receipt_sync import ReceiptChanges
from embedding_ingest.stores.records import (
    DEFAULT_MAX_PROVIDER_RETRIES,
    BatchStatus,
    BatchSummary,
    BatchType,
    EmbeddingItem,
    EmbeddingStatus,
    ExecutionRecord,
    ExecutionStatus,
    HistoryEvent,
    ItemKind,
    LeanItem,
    Lease,
    MigrationRecord,
    MigrationState,
    ObjectInfo,
    ReleaseCause,
    SnapshotVersion,
)
from embedding_ingest.stores.relabel import ReceiptLabels, Relabelled


class ObjectStore(ABC):
    """Blob storage with conditional writes. Subclasses implement the abstract hooks; the JSON helpers
    and the rules around them live here once."""

    #: Reported as `*_s3_bucket` in step results (bucket name, or the local directory).
    location: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, if_none_match: bool = False,
                  if_match: str | None = None) -> str:
        """Write `data`; return the new etag. `if_none_match` = create only if absent; `if_match` =
        replace only if the current etag equals it. Raises PreconditionFailedError otherwise."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Raises ObjectNotFoundError."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under `prefix`, ordered by key."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Deleting an absent key is not an error."""

    @abstractmethod
    def upload_file(self, key: str, path: Path, *, if_none_match: bool = False, move: bool = False,
                    sha256: str | None = None) -> str:
        """Stream a (possibly large) file; return its etag. `move=True`: the caller gives the file up
        (a temporary it never reads again), so a store on the same filesystem may take it by rename
        instead of a copy; it is gone after a successful call (and may be on a failed one).
        `sha256`: the hex sha256 of the file's bytes, when the caller hashed them as it wrote them; a
        store whose etag is that digest (the local one) then need not read the file again, any other
        ignores it."""

    @abstractmethod
    def download_file(self, key: str, path: Path) -> None:
        """Stream an object to `path` (written atomically). Raises ObjectNotFoundError."""

    # -- rules kept once, for every backend ---------------------------------------------------
    def put_json(self, key: str, value: Any, **conditions: Any) -> str:
        data = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        return self.put_bytes(key, data, **conditions)

    def get_json(self, key: str) -> Any:
        raw = self.get_bytes(key)
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptObjectError(key, f"not valid JSON ({exc})") from exc

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def delete_prefix(self, prefix: str) -> int:
        keys = [info.key for info in self.list(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)


@runtime_checkable
class ItemLedger(Protocol):
    def add_items(self, items: Iterable[EmbeddingItem]) -> int:
        """Insert items that are absent (by item_id); existing ones are left untouched (idempotent
        import). Returns how many were new."""

    def get_items(self, item_ids: Sequence[str]) -> dict[str, EmbeddingItem]: ...

    def find_items(self, kind: ItemKind, status: EmbeddingStatus, *, limit: int | None = None,
                   batch_id: str | None = None) -> list[EmbeddingItem]:
        """Ordered by item_id."""

    def find_lean_items(self, kind: ItemKind, batch_id: str, statuses: Collection[EmbeddingStatus]
                        ) -> list[LeanItem]:
        """The items of `kind` in batch `batch_id` whose status is one of `statuses`, as LeanItems (only
        what ingesting the batch's output needs), ordered by item_id. The same items find_items gives."""

    def count_items(self, kind: ItemKind | None = None) -> dict[EmbeddingStatus, int]: ...

    def claim_batch(self, summary: BatchSummary, item_ids: Sequence[str]) -> bool:
        """Atomically record `summary` and move every item NONE -> PENDING with batch_id set.
        All or nothing: raises ClaimConflictError if any item is not NONE. Re-claiming the same
        batch with the same items (a rerun) is a no-op. Returns True when this call made the claim,
        False when it was already made (by a rerun's first run, or by another submitter that packed the
        same items into the same deterministic batch id a moment earlier: that batch is theirs to send)."""

    def release_items(self, batch_id: str, errors: Mapping[str, str], *,
                      cause: ReleaseCause = ReleaseCause.CONTENT,
                      provider_retry_limit: int = DEFAULT_MAX_PROVIDER_RETRIES) -> int:
        """Items PENDING in `batch_id` go back to NONE with the reason, counted by `cause`
        (records.release_outcome): CONTENT spends an attempt (FAILED once attempts reach MAX_ATTEMPTS),
        PROVIDER counts a provider retry (FAILED past `provider_retry_limit`). Items not PENDING in that
        batch are ignored (idempotent). Returns how many were released."""

    def requeue_items(self, kind: ItemKind, status: EmbeddingStatus, reason: str, *,
                      limit: int | None = None, item_ids: Sequence[str] | None = None) -> int:
        """Up to `limit` SUCCESS or FAILED items of `kind` (only those of `item_ids`, if given) back to
        NONE, attempts and provider_retries reset, batch cleared, `reason` recorded (a model migration,
        or `items requeue --failed`). Returns how many moved; a rerun moves the rest."""

    def provider_retry_counts(self, kind: ItemKind) -> dict[str, int]:
        """{"items": items not yet embedded (NONE/PENDING) that had provider-side failures, "retries":
        their provider retries in all, "failed": items FAILED by the provider-retry bound}."""

    def mark_items_succeeded(self, batch_id: str, item_ids: Sequence[str]) -> int:
        """PENDING items of `batch_id` -> SUCCESS. Idempotent; returns how many changed."""

    # -- receipts as they change (issue 10) ------------------------------------------------------
    def sync_receipts(self, receipts: Sequence[tuple[str, int, Sequence[EmbeddingItem]]]
                      ) -> list[ReceiptChanges]:
        """Make each (image_id, receipt_number)'s items the given ones (stores/receipt_sync.py):
        add new, re-queue changed (NONE), leave unchanged, mark vanished DELETING. Each receipt lands
        whole or not at all, and a rerun after a failure completes it."""

    def relabel(self, receipts: Sequence[ReceiptLabels]) -> list[Relabelled]:
        """Give the named items of each (image_id, receipt_number, {item_id: label keys}) those label
        keys in place of theirs, and their lines the union of validated labels (stores/relabel.py):
        each receipt read once, only the items whose living metadata changes written (metadata
        version + 1: a metadata update), each receipt whole or not at all. Unknown or DELETING items
        are reported, not written. A rerun with the same labels changes nothing."""

    def receipt_keys(self, image_id: str | None = None) -> list[tuple[str, int]]:
        """(image_id, receipt_number) of receipts with active (not DELETING) items, sorted."""

    def claim_deletions(self, summary: BatchSummary, item_ids: Sequence[str]) -> None:
        """Record deletion batch `summary` (operation=delete) and put the DELETING items without a
        batch in it, all or nothing; a rerun is a no-op. Raises InvalidInputError otherwise."""

    def receipt_items(self, image_id: str, receipt_number: int) -> list[EmbeddingItem]:
        """Every item of one receipt (DELETING ones too), by id; [] for an unknown receipt."""

    def find_metadata_pending(self, kind: ItemKind) -> list[EmbeddingItem]:
        """Items of `kind` with a metadata change not yet queued (issue 23), by id."""

    def claim_metadata(self, summary: BatchSummary, versions: Sequence[tuple[str, int]]) -> None:
        """Store a metadata batch and mark its (item_id, metadata_version) pairs queued; idempotent."""

    def forget_deleted(self, batch_id: str, item_ids: Sequence[str]) -> int:
        """Drop DELETING items of deletion batch `batch_id` (their ids left the published version)."""


@runtime_checkable
class BatchLedger(Protocol):
    def get_batch(self, batch_id: str) -> BatchSummary | None: ...

    def list_batches(self, *, statuses: Collection[BatchStatus] | None = None,
                     batch_type: BatchType | None = None, limit: int | None = None
                     ) -> list[BatchSummary]:
        """Oldest first (submitted_at, then batch_id)."""

    def update_batch(self, batch_id: str, **changes: Any) -> BatchSummary:
        """Change fields of an existing summary (status, provider_batch_id, provider_status,
        last_error, ...); sets updated_at. Raises BatchNotFoundError."""


@runtime_checkable
class LockLedger(Protocol):
    """Leases judged by record version, not by clocks (records.Lease). `now` arguments are the holder's
    wall clock in epoch seconds, written for display only (default: this machine's)."""

    def acquire_lock(self, name: str, owner: str, lease_seconds: float, *, takeover_rvn: str | None = None,
                     now: float | None = None) -> Lease | None:
        """Take the lock if it is free, or, with `takeover_rvn`, if its holder's lease still has that record
        version (the caller watched it long enough: steps/lease.py). The fencing token increases on every
        acquisition. None when neither holds (held by a live holder, or someone else got there first)."""

    def heartbeat(self, lease: Lease, *, now: float | None = None) -> Lease:
        """Renew our lease: a new record version. Raises LockLostError if it is not ours any more."""

    def release_lock(self, lease: Lease) -> bool:
        """Release only if we still hold it; returns whether we did."""

    def current_lease(self, name: str) -> Lease | None:
        """The lock's holder as recorded, alive or not (one read cannot tell); None when free."""

    def break_lock(self, name: str, *, by: str, rvn: str | None = None, fencing_token: int | None = None,
                   now: float | None = None) -> bool:
        """Free the lock for an operator (`by` is recorded) if its lease still has record version `rvn`,
        or (forced) fencing token `fencing_token`; exactly one of the two. Returns whether it was broken.
        The fencing counter stays, so the old holder's publish is refused."""

    def note_lock_wait(self, name: str, waiter: str, rvn: str) -> int:
        """For a waiter that looks again only after a fixed wait (a state machine's Retry): how many
        waits it has recorded since it first saw `rvn` on lock `name` (0 the first time), and one more
        recorded now. A different rvn starts the count again."""

    def forget_lock_wait(self, name: str, waiter: str) -> None:
        """Drop the waiter's record (it got the lock, or gave up)."""


@runtime_checkable
class SnapshotLedger(Protocol):
    """The published pointer of each database, and its history. `pointer` names another pointer of
    the same database (a model migration's staging pointer, "lines+<id>"; default: the database's own,
    the one queries read); its versions keep `database` as theirs, and the lock is still `database`'s."""

    def get_published(self, database: str, *, pointer: str | None = None) -> SnapshotVersion | None: ...

    def publish_version(self, version: SnapshotVersion, *, expected_current: str | None,
                        lease: Lease, pointer: str | None = None) -> None:
        """One atomic, conditional write: `lease` must be the current holder of the lock named
        `version.database` (else StaleFencingTokenError) and the current version of the pointer must
        equal `expected_current` (else PointerConflictError). Also records the version in the pointer's
        history."""

    def list_versions(self, database: str, *, pointer: str | None = None) -> list[SnapshotVersion]:
        """Known versions, newest first."""

    def forget_version(self, database: str, version: str, *, pointer: str | None = None) -> None: ...

    def forget_pointer(self, pointer: str) -> None:
        """Drop a staging pointer and its history (never a database's own pointer: InvalidInputError)."""


@runtime_checkable
class MigrationLedger(Protocol):
    def get_migration(self, kind: ItemKind) -> MigrationRecord | None: ...

    def save_migration(self, record: MigrationRecord, *, expected_state: MigrationState | None) -> None:
        """Write `record` if the kind's current record is in `expected_state` (None: there is none, or
        it ended: SWITCHED or ROLLED_BACK), else raise PointerConflictError. One conditional write."""


@runtime_checkable
class ExecutionLedger(Protocol):
    def create_execution(self, record: ExecutionRecord) -> None:
        """Raises ExecutionAlreadyExistsError if the arn exists."""

    def update_execution(self, record: ExecutionRecord) -> None: ...

    def get_execution(self, name_or_arn: str) -> ExecutionRecord | None: ...

    def list_executions(self, *, workflow: str | None = None, status: ExecutionStatus | None = None,
                        limit: int | None = None) -> list[ExecutionRecord]:
        """Newest first."""

    def append_events(self, execution_arn: str, events: Sequence[HistoryEvent]) -> None: ...

    def get_events(self, execution_arn: str) -> list[HistoryEvent]:
        """Oldest first."""


@runtime_checkable
class Ledger(ItemLedger, BatchLedger, LockLedger, SnapshotLedger, MigrationLedger, ExecutionLedger,
             Protocol):
    """Everything durable except blobs. Adapters: SQLite (embedded default), DynamoDB."""

    def close(self) -> None: ...
