"""The BatchProvider port: the subset of the OpenAI Batch API the pipeline uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Batch API limits (tooling notes): per input file.
MAX_REQUESTS_PER_BATCH = 50_000
# "The file can contain up to 50,000 requests, and can be up to 200 MB in size" (Batch guide; openai-openapi
# CreateBatchRequest). OpenAI does not say whether MB is 10^6 or 2^20 bytes; 200,000,000 is within both
# readings (a real "File is too large." at 2^20-based sizes: bespokelabsai/curator#111, #113).
MAX_BYTES_PER_BATCH_FILE = 200_000_000


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
# The one queue-limit code with evidence (openai/openai-python#2084: `token_limit_exceeded`, line None,
# "Enqueued token limit reached ..."). Whatever the code, a batch error naming no input line is not about
# any request's content (steps/poll.py), so an unknown queue-limit code spends no attempt either.
QUEUE_LIMIT_ERROR_CODES = frozenset({"token_limit_exceeded"})


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
    # Input lines (1-based) the batch-level errors name, with their error; an error without a line is
    # not about any request (a queue limit, say) and is only counted.
    line_errors: dict[int, str] = Field(default_factory=dict)
    errors_without_line: int = 0  # batch-level errors that name no line (queue limits and the like)
    input_tokens: int | None = None  # usage.input_tokens (batches created after 2025-09-07 carry it)
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: float | None = None  # epoch seconds

    @property
    def finished(self) -> bool:
        """The provider is done with it: completed, failed, expired or cancelled."""
        return self.status in FINISHED_PROVIDER_STATUSES


@runtime_checkable
class BatchProvider(Protocol):
    """The Batch API subset the pipeline uses. `dimensions` is the width of every vector it returns."""

    name: str  # "local" | "openai"
    model: str
    dimensions: int

    def submit(self, batch_id: str, requests_jsonl: bytes, metadata: Mapping[str, str]) -> ProviderBatch:
        """find_live, else upload and create (one call, for callers that keep no file id between)."""

    def upload(self, batch_id: str, requests_jsonl: bytes) -> str:
        """Upload a JSONL input file (checked against the per-file limits); its file id."""

    def find_live(self, batch_id: str) -> ProviderBatch | None:
        """The batch made for `batch_id` that did not end failed/expired/cancelled, if any."""

    def create(self, batch_id: str, input_file_id: str, metadata: Mapping[str, str]) -> ProviderBatch:
        """Create the batch for an uploaded file. Idempotent on `batch_id`: if a live batch carrying
        metadata batch_id exists, it is returned instead of creating a second one. Raises
        UnknownProviderFileError when the file is gone."""

    def retrieve(self, provider_batch_id: str) -> ProviderBatch:
        """Raises UnknownProviderBatchError."""

    def list_batches(self, *, created_after: float) -> list[ProviderBatch]:
        """Every batch created at or after `created_after` (epoch seconds), newest first: the Batch
        API's paginated listing (OpenAI `GET /v1/batches`), one call per page. Read-only: polls nothing."""

    def open_file(self, file_id: str) -> AbstractContextManager[Iterator[bytes]]:
        """An output, error or input file's content as chunks of bytes, streamed while consumed (never
        held whole). Raises UnknownProviderFileError on entering for a file the provider does not have."""

    def cancel(self, provider_batch_id: str) -> ProviderBatch: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Synchronous embeddings with the same model and width (for queries): float32, (len, dims)."""


def submit_in_steps(provider: BatchProvider, batch_id: str, requests_jsonl: bytes,
                    metadata: Mapping[str, str]) -> ProviderBatch:
    """The port's `submit` for every provider: the live batch already made for `batch_id` if any, else
    upload and create."""
    existing = provider.find_live(batch_id)
    if existing is not None:
        return existing
    return provider.create(batch_id, provider.upload(batch_id, requests_jsonl), metadata)
