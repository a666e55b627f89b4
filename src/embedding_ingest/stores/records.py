"""Domain records the store ports speak in. No backend shapes (SQL rows, DynamoDB items) leak out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from embedding_ingest.exceptions import InvalidInputError


class ItemKind(StrEnum):
    LINE = "line"
    WORD = "word"

    @property
    def database(self) -> str:
        """The Chroma database/collection name: "lines" or "words"."""
        return f"{self.value}s"

    @property
    def batch_type(self) -> BatchType:
        return BatchType.LINE_EMBEDDING if self is ItemKind.LINE else BatchType.WORD_EMBEDDING


class BatchType(StrEnum):
    LINE_EMBEDDING = "LINE_EMBEDDING"
    WORD_EMBEDDING = "WORD_EMBEDDING"


class EmbeddingStatus(StrEnum):
    NONE = "NONE"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"  # released MAX_ATTEMPTS times; never claimed again automatically
    # Issue 10: the item left its receipt (re-import without it, `receipts delete`, `import --sync`).
    # It is out of the active set; a deletion batch carries its id to the next published version,
    # and once that version lacks it the ledger forgets the item.
    DELETING = "DELETING"


MAX_ATTEMPTS = 3  # releases whose cause is the item's own content (ReleaseCause.CONTENT)
DEFAULT_MAX_PROVIDER_RETRIES = 10  # MAX_PROVIDER_RETRIES: releases for a provider reason, before FAILED


class ReleaseCause(StrEnum):
    """Why an item goes back without its embedding (issue 19). Only CONTENT spends one of its
    MAX_ATTEMPTS; PROVIDER (the request never ran: expired, cancelled, queue limit, a vanished batch or
    file; or it failed on the provider's side: 5xx, a rejected output line) counts a provider retry."""

    CONTENT = "content"
    PROVIDER = "provider"


def release_outcome(attempts: int, provider_retries: int, cause: ReleaseCause, provider_retry_limit: int,
                    reason: str, kind: ItemKind) -> tuple[EmbeddingStatus, int, int, str]:
    """(status, attempts, provider_retries, last_error) of an item released for `cause`: the one rule
    every ledger adapter applies. Past its bound the item is FAILED, and the reason says how to retry it."""
    if cause is ReleaseCause.CONTENT:
        attempts += 1
        if attempts >= MAX_ATTEMPTS:
            return EmbeddingStatus.FAILED, attempts, provider_retries, reason
        return EmbeddingStatus.NONE, attempts, provider_retries, reason
    provider_retries += 1
    if provider_retries > provider_retry_limit:
        return (EmbeddingStatus.FAILED, attempts, provider_retries,
                f"gave up after {provider_retries} provider-side failures (MAX_PROVIDER_RETRIES="
                f"{provider_retry_limit}), the last: {reason}; `embedding-ingest items requeue {kind.value} "
                "--failed` queues it again")
    return EmbeddingStatus.NONE, attempts, provider_retries, reason


class BatchStatus(StrEnum):
    PENDING = "PENDING"
    VALIDATING = "VALIDATING"
    IN_PROGRESS = "IN_PROGRESS"
    FINALIZING = "FINALIZING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELING = "CANCELING"
    CANCELLED = "CANCELLED"


# Lesson 1: list every status in which a batch still needs polling, not only PENDING.
ACTIVE_BATCH_STATUSES: tuple[BatchStatus, ...] = (
    BatchStatus.PENDING,
    BatchStatus.VALIDATING,
    BatchStatus.IN_PROGRESS,
    BatchStatus.FINALIZING,
    BatchStatus.CANCELING,
)


# What Chroma 1.5.9 holds as a metadata value: a scalar, or a non-empty array of one scalar type
# (issue 23: valid_labels). Checked in full by snapshots.models.check_metadata_value.
MetadataValue = str | int | float | bool | list[str] | list[int] | list[float] | list[bool]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EmbeddingItem(_Record):
    """One line or word to embed. `item_id` is the OpenAI custom_id and the Chroma id."""

    item_id: str
    kind: ItemKind
    image_id: str
    receipt_number: int
    line_id: int
    word_id: int | None = None
    text: str  # the item's own text (Chroma document)
    embed_text: str  # text-with-context sent to the provider
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    embedding_status: EmbeddingStatus = EmbeddingStatus.NONE
    batch_id: str | None = None  # set while PENDING (and kept on SUCCESS)
    attempts: int = 0  # releases blamed on the item's content (ReleaseCause.CONTENT)
    provider_retries: int = 0  # releases for a provider reason (issue 19; ReleaseCause.PROVIDER)
    last_error: str | None = None
    # Token fitting (issue 11): cl100k_base tokens of embed_text (None: imported before counting) and
    # whether embed_text was shortened to stay within the model's 8,192-token input limit.
    tokens: int | None = None
    truncated: bool = False
    # Issue 10: sha256 of exactly what is embedded (embed_text and model; receipts/sync.py). None for
    # items imported before hashes existed: the next import of their receipt fills it in.
    content_hash: str | None = None
    # Issue 23: sha256 of the living metadata (living_keys.metadata_hash); a per-item counter raised
    # with every new hash (records carry it as `metadata_version`: the newest wins, without clocks);
    # and the highest version already on its way to the snapshot (in a metadata batch, or carried by
    # an embedding). metadata_version > metadata_queued: a metadata update is waiting to be queued.
    metadata_hash: str | None = None
    metadata_version: int = 0
    metadata_queued: int = 0
    # Not stored: whether this item's own labels were given (a word's `labels` in the receipt file, or
    # `labels apply`). False: a sync keeps the labels the ledger has (stores/receipt_sync.py).
    labels_given: bool = Field(default=True, exclude=True)

    @property
    def metadata_pending(self) -> bool:
        return self.metadata_version > self.metadata_queued


@dataclass(frozen=True, slots=True)
class LeanItem:
    """What ingesting a batch's output needs of one item, and nothing else (ItemLedger.find_lean_items).

    Issue 19: PollBatches holds every item of its batch at once (50,000 for a full batch); as
    EmbeddingItems they took ~3.5 KB each (~175 MB), this plain slotted record about a seventh of it.
    `metadata` is the published metadata (as EmbeddingItem.metadata), `text` the Chroma document."""

    item_id: str
    status: EmbeddingStatus
    text: str
    metadata: dict[str, MetadataValue]
    metadata_version: int


class BatchOperation(StrEnum):
    EMBED = "embed"  # items sent to the provider; their vectors are published
    DELETE = "delete"  # items that left their receipts; their ids are removed from the published version
    METADATA = "metadata"  # issue 23: living metadata of published items changed; no provider, no token


class BatchSummary(_Record):
    batch_id: str
    batch_type: BatchType
    status: BatchStatus = BatchStatus.PENDING
    provider_batch_id: str | None = None  # None until the provider accepted the batch
    provider_status: str | None = None  # the provider's own word (e.g. "completed"), kept apart from ours
    submitted_at: float  # epoch seconds
    updated_at: float | None = None
    item_count: int
    receipt_refs: list[str] = Field(default_factory=list)  # "image_id#receipt_number"
    input_file_id: str | None = None
    model: str | None = None
    last_error: str | None = None
    # Tokens and polling (issue 11): input tokens submitted (cl100k_base count), tokens the provider
    # reported in its output's `usage` (billed), when a poll last asked the provider about it, and the
    # provider's status as its batch listing last showed it (provider_status is what a poll saw).
    tokens: int | None = None
    billed_tokens: int | None = None
    polled_at: float | None = None  # epoch seconds; a poll stamps the time it started, once it is done
    poll_started_at: float | None = None  # stamped before asking the provider: > polled_at while in flight
    listed_status: str | None = None
    # For the console's timeline (issue 20): when a poll first read the provider's results, and when
    # MarkComplete closed the batch once its items were in a published version (which one). Optional:
    # records written before these existed load with None.
    results_at: float | None = None  # epoch seconds
    published_at: float | None = None  # epoch seconds
    published_version: str | None = None
    operation: BatchOperation = BatchOperation.EMBED  # issue 10: deletion batches travel the same way
    # Output lines whose custom_id was not an item of this batch (kept, not only logged; issue 10).
    unknown_custom_ids: list[str] = Field(default_factory=list)
    # A metadata batch's items as "item_id@metadata_version" (issue 23): what it must publish.
    metadata_items: list[str] = Field(default_factory=list)
    # Issue 19: the width its requests asked for (None: recorded before widths were), and how many polls
    # in a row the provider answered 404 for it, since when (a batch that vanished at the provider).
    dimensions: int | None = None
    not_found_polls: int = 0
    not_found_since: float | None = None


class Lease(_Record):
    """Proof of holding a lock. `fencing_token` strictly increases on every acquisition of the lock.

    No deadline is stored: clocks of different machines are never compared (the Amazon DynamoDB Lock
    Client's design). `rvn`, the record version number, is a fresh random id on every acquisition and
    heartbeat; a waiter that sees the same rvn for `lease_seconds` on its own clock may take the lock
    over (steps/lease.py). `acquired_at` / `heartbeat_at` are the holder's own clock, ISO-8601 UTC, for
    people reading `locks list`, never for a decision."""

    name: str
    owner: str
    fencing_token: int
    rvn: str
    lease_seconds: float
    heartbeat_seconds: float
    acquired_at: str | None = None
    heartbeat_at: str | None = None


def new_rvn() -> str:
    """A record version number: random, so no two writes of a lease ever share one."""
    return uuid.uuid4().hex


def heartbeat_interval(lease_seconds: float) -> float:
    """How often a holder renews a lease of `lease_seconds` (a third: two missed beats are survivable)."""
    return lease_seconds / 3


def holder_time(epoch_seconds: float | None) -> str | None:
    """`epoch_seconds` as ISO-8601 UTC to the second, as a holder reports it ("unreadable" for a clock so
    wrong it has no date: year 33658 cannot be written)."""
    if epoch_seconds is None:
        return None
    try:
        moment = datetime.fromtimestamp(epoch_seconds, UTC)
    except (ValueError, OverflowError, OSError):
        return "unreadable"
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class SnapshotVersion(_Record):
    """A published, immutable snapshot version and where its archive lives."""

    database: str
    version: str  # content-addressed id
    key: str  # object-store prefix holding archive + manifest
    count: int
    dimensions: int
    model: str
    published_at: float
    fencing_token: int
    parent_version: str | None = None


class MigrationState(StrEnum):
    """Where a model migration stands (issue 19; embedding_ingest/migration/). Each change is a write
    conditional on the state before it, so a rerun after a crash picks up where it stopped."""

    REQUEUING = "REQUEUING"  # items go back to NONE for re-embedding; nothing is submitted meanwhile
    BUILDING = "BUILDING"  # new-model batches publish to the staging pointer; queries read the live one
    SWITCHED = "SWITCHED"  # the live pointer moved to the staging version (rollback: back to before_switch)
    ROLLED_BACK = "ROLLED_BACK"


class MigrationRecord(_Record):
    """One kind's model migration: from the live version's model and width to the target's, built
    beside it under the `staging` pointer (a pointer of the same database, so collections and objects
    are shared) and switched to when every item is embedded with the target."""

    kind: ItemKind
    state: MigrationState
    from_model: str
    from_dimensions: int
    to_model: str
    to_dimensions: int
    staging: str  # the ledger pointer key of the version being built ("lines+<id>")
    started_at: float  # epoch seconds
    updated_at: float
    previous_version: str | None = None  # the live version when the migration started
    before_switch: str | None = None  # the live version the switch replaced (a rollback returns to it)
    switched_version: str | None = None
    requeued: int = 0  # items sent back to NONE for re-embedding


ENDED_MIGRATION_STATES = frozenset({MigrationState.SWITCHED, MigrationState.ROLLED_BACK})


def migration_state_matches(current: MigrationState | None, expected: MigrationState | None) -> bool:
    """The save_migration condition every ledger applies: `expected` None accepts no record or an
    ended one (a new migration may start), any other state only itself."""
    if expected is None:
        return current is None or current in ENDED_MIGRATION_STATES
    return current is expected


def check_staging_pointer(pointer: str) -> str:
    """A staging pointer is "<database>+<id>"; a database's own pointer is never dropped."""
    if "+" not in pointer:
        raise InvalidInputError(f"{pointer!r} is a database's own pointer, not a staging one")
    return pointer


class ExecutionStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"


class ExecutionRecord(_Record):
    """Shaped like Step Functions' DescribeExecution (epoch seconds instead of datetimes)."""

    execution_arn: str
    name: str
    state_machine_arn: str
    workflow: str  # "line" | "word"
    status: ExecutionStatus
    start_date: float
    stop_date: float | None = None
    input: str = "{}"
    output: str | None = None
    error: str | None = None
    cause: str | None = None


class HistoryEvent(_Record):
    """Shaped like one GetExecutionHistory event: `details` goes under `{camelType}EventDetails`."""

    id: int
    previous_event_id: int = 0
    timestamp: float
    type: str
    details: dict[str, Any] = Field(default_factory=dict)


class ObjectInfo(_Record):
    key: str
    size: int
    etag: str
    last_modified: float
