"""The BatchProvider port: the subset of the OpenAI Batch API the pipeline uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

# Batch API limits (tooling notes): per input file.
MAX_REQUESTS_PER_BATCH = 50_000
MAX_BYTES_PER_BATCH_FILE = 200 * 1024 * 1024


class ProviderBatchStatus(StrEnum):
    """The provider's statuses, spelled as OpenAI spells them."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


FINISHED_PROVIDER_STATUSES = frozenset({ProviderBatchStatus.COMPLETED, ProviderBatchStatus.FAILED,
                                        ProviderBatchStatus.EXPIRED, ProviderBatchStatus.CANCELLED})
# Batch-level error codes meaning "your organisation's queue is full", not "this input is bad": the
# batch failed at validation only because of what else was enqueued (OpenAI batch errors.data[].code).
QUEUE_LIMIT_ERROR_CODES = frozenset({"token_limit_exceeded", "request_limit_exceeded",
                                     "batch_limit_exceeded", "rate_limit_exceeded"})


class RequestCounts(BaseModel):
    total: int = 0
    completed: int = 0
    failed: int = 0


class ProviderBatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    provider_batch_id: str
    status: ProviderBatchStatus
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_counts: RequestCounts = Field(default_factory=RequestCounts)
    errors: list[str] = Field(default_factory=list)  # batch-level errors (validation failures)
    error_codes: list[str] = Field(default_factory=list)  # their codes, e.g. "token_limit_exceeded"
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: float | None = None  # epoch seconds

    @property
    def finished(self) -> bool:
        """The provider is done with it: completed, failed, expired or cancelled."""
        return self.status in FINISHED_PROVIDER_STATUSES


@runtime_checkable
class BatchProvider(Protocol):
    name: str  # "local" | "openai"
    model: str
    dimensions: int

    def submit(self, batch_id: str, requests_jsonl: bytes, metadata: Mapping[str, str]) -> ProviderBatch:
        """Upload the JSONL input and create the batch. Idempotent on `batch_id`: if a batch carrying
        metadata batch_id already exists, it is returned instead of creating a second one."""

    def retrieve(self, provider_batch_id: str) -> ProviderBatch:
        """Raises UnknownProviderBatchError."""

    def list_batches(self, *, created_after: float) -> list[ProviderBatch]:
        """Every batch created at or after `created_after` (epoch seconds), newest first: the Batch
        API's paginated listing (OpenAI `GET /v1/batches`), one call per page. Read-only: polls nothing."""

    def download(self, file_id: str) -> bytes:
        """The raw content of an output or error file."""

    def cancel(self, provider_batch_id: str) -> ProviderBatch: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Synchronous embeddings with the same model (for queries)."""
