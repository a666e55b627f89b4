"""The OpenAI Batch API through the official SDK.

Retries are ours (tenacity: exponential backoff with jitter, bounded attempts) and the SDK's own are
switched off, so one policy decides how long we wait; which errors it retries follows the SDK's rules
(openai_errors.py): 408, 409, 429, 5xx, connection errors and timeouts, `x-should-retry` first, never a
Retry-After above 120 s (raised as transient for the next run instead). Quota/billing errors and a
refused key raise ProviderAccountError at once; other 4xx fail at once with a one-line message naming the
call. Output files are streamed (open_file), never held whole. The API key stays inside the client:
nothing here logs or formats the client or its options.

Inside Lambda one call must give up before the function's timeout does: openai_call_budget fits the
attempts, each request's timeout and the longest wait (Retry-After included) into CALL_BUDGET_SECONDS.
Without a budget: 5 attempts, the SDK's 600 s timeout, waits up to 120 s.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import numpy as np
import openai
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.providers.base import ProviderBatch, submit_in_steps
from embedding_ingest.providers.batch_files import BASE64_DTYPE, EMBEDDINGS_URL, check_batch_limits
from embedding_ingest.providers.batch_objects import to_provider_batch
from embedding_ingest.providers.exceptions import (
    ProviderRequestError,
    ProviderTransientError,
    UnknownProviderBatchError,
    UnknownProviderFileError,
)
from embedding_ingest.providers.models import request_dimensions
from embedding_ingest.providers.openai_errors import (
    MAX_RETRY_AFTER_SECONDS,
    account_problem,
    is_retried,
    retry_after_seconds,
    verdict,
    wait_retry_after_or,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

REPLACEABLE_STATUSES = frozenset({"failed", "expired", "cancelled"})
MAX_INPUTS_PER_EMBEDDING_REQUEST = 2_048
DEFAULT_SUBMIT_LOOKBACK_SECONDS = 7 * 24 * 3600
DOWNLOAD_CHUNK_BYTES = 1 << 20  # memory while streaming a file: one chunk plus one line
DEFAULT_ATTEMPTS = 5
SDK_TIMEOUT_SECONDS = 600.0  # the openai SDK's default request timeout
MIN_REQUEST_SECONDS = 10.0  # a request given less would time out on a slow but healthy answer
WAIT_SHARE = 0.1  # of a call budget, the longest one wait between attempts may take


@dataclass(frozen=True)
class OpenAICallBudget:
    """How one OpenAI call may spend its time: attempts, each request's timeout, the longest wait."""

    attempts: int
    request_timeout: float
    max_wait: float

    @property
    def worst_case_seconds(self) -> float:
        return self.attempts * self.request_timeout + (self.attempts - 1) * self.max_wait


def openai_call_budget(budget_seconds: float | None) -> OpenAICallBudget:
    """The most attempts (up to 5) whose worst case fits `budget_seconds`; None: no limit (the SDK's
    timeout). Raises ConfigurationError when not even one request fits."""
    if budget_seconds is None:
        return OpenAICallBudget(DEFAULT_ATTEMPTS, SDK_TIMEOUT_SECONDS, MAX_RETRY_AFTER_SECONDS)
    max_wait = min(MAX_RETRY_AFTER_SECONDS, budget_seconds * WAIT_SHARE)
    for attempts in range(DEFAULT_ATTEMPTS, 0, -1):
        timeout = (budget_seconds - (attempts - 1) * max_wait) / attempts
        if timeout >= MIN_REQUEST_SECONDS:
            return OpenAICallBudget(attempts, min(SDK_TIMEOUT_SECONDS, timeout), max_wait)
    raise ConfigurationError(f"CALL_BUDGET_SECONDS={budget_seconds:g}: too short for one OpenAI request "
                             f"(at least {MIN_REQUEST_SECONDS:g} s)")


class OpenAIBatchProvider:
    """The BatchProvider port on OpenAI (providers/base.py). `dimensions` is the width every vector has;
    requests carry it as `dimensions` for models that take it (providers/models.py)."""

    name = "openai"

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        model: str = "text-embedding-3-small",
        dimensions: int = 1536,
        max_attempts: int = DEFAULT_ATTEMPTS,
        wait: wait_base | None = None,
        max_wait_seconds: float = MAX_RETRY_AFTER_SECONDS,
        submit_lookback_seconds: float = DEFAULT_SUBMIT_LOOKBACK_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self._client = client.with_options(max_retries=0)
        self.model = model
        self.dimensions = dimensions
        self.max_attempts = max_attempts
        self._wait = wait_retry_after_or(
            wait if wait is not None else wait_exponential_jitter(initial=1, max=30, jitter=1),
            cap=min(MAX_RETRY_AFTER_SECONDS, max_wait_seconds))
        self._sleep = sleep
        self.submit_lookback_seconds = submit_lookback_seconds

    def __repr__(self) -> str:  # never the client: its repr could carry the key
        return f"OpenAIBatchProvider(model={self.model!r}, dimensions={self.dimensions})"

    # -- error policy -----------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T], *, not_found: Callable[[], Exception] | None = None) -> T:
        """Run one API call under the retry policy, translating SDK errors into ours."""
        retrying = Retrying(
            retry=retry_if_exception(is_retried),
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=lambda state: log.warning(
                "OpenAI %s failed (%s), attempt %d of %d; retrying",
                what,
                _status_of(state.outcome.exception()),
                state.attempt_number,
                self.max_attempts,
            ),
        )
        try:
            return retrying(fn)
        except RetryError as exc:  # only raised when every attempt failed transiently
            last = exc.last_attempt.exception()
            raise ProviderTransientError(
                f"OpenAI {what} still failing after {self.max_attempts} attempts: {_named(last)}: "
                f"{_message_of(last)}"
            ) from last
        except openai.APIError as exc:
            raise self._translated(what, exc, not_found) from exc

    @staticmethod
    def _translated(what: str, exc: openai.APIError, not_found: Callable[[], Exception] | None) -> Exception:
        if (account := account_problem(exc)) is not None:
            return account
        if verdict(exc) == "wait_too_long":
            return ProviderTransientError(
                f"OpenAI {what}: the API asked to wait {retry_after_seconds(exc):.0f} s (more than "
                f"{MAX_RETRY_AFTER_SECONDS:.0f}); left to the next run: {_message_of(exc)}")
        if isinstance(exc, openai.NotFoundError):
            if not_found is not None:
                return not_found()
            return ProviderRequestError(f"OpenAI {what}: not found: {_message_of(exc)}")
        if is_retried(exc):  # only reached with max_attempts=1
            return ProviderTransientError(f"OpenAI {what}: {_named(exc)}: {_message_of(exc)}")
        return ProviderRequestError(f"OpenAI {what} rejected ({_status_of(exc)}): {_named(exc)}: "
                                    f"{_message_of(exc)}")

    # -- the BatchProvider port -------------------------------------------------------------------
    def submit(self, batch_id: str, requests_jsonl: bytes, metadata: Mapping[str, str]) -> ProviderBatch:
        """find_live, else upload and create: one call for callers that keep no file id between."""
        check_batch_limits(requests_jsonl)  # before any call
        return submit_in_steps(self, batch_id, requests_jsonl, metadata)

    def upload(self, batch_id: str, requests_jsonl: bytes) -> str:
        """POST /v1/files (purpose batch); the new file's id. Every upload makes a new file."""
        check_batch_limits(requests_jsonl)
        uploaded = self._call(
            "file upload",
            lambda: self._client.files.create(file=(f"{batch_id}.jsonl", requests_jsonl), purpose="batch"),
        )
        return uploaded.id

    def find_live(self, batch_id: str) -> ProviderBatch | None:
        """The batch carrying metadata batch_id that did not end failed/expired/cancelled, if any."""
        found = self._call("batch list", lambda: self._find_live_batch(batch_id))
        if found is not None:
            log.info("batch %s already submitted as %s; not submitting again", batch_id, found["id"])
        return to_provider_batch(found) if found is not None else None

    def create(self, batch_id: str, input_file_id: str, metadata: Mapping[str, str]) -> ProviderBatch:
        """POST /v1/batches for an uploaded file, or the live batch already made for `batch_id`.
        Raises UnknownProviderFileError when the file is gone (upload again)."""
        batch_metadata = {**metadata, "batch_id": batch_id}
        attempts = 0

        def find_or_create() -> dict[str, Any]:
            # A create that timed out or hit a 5xx may still have made the batch: look before retrying.
            nonlocal attempts
            attempts += 1
            if attempts > 1 and (found := self._find_live_batch(batch_id)) is not None:
                return found
            created = self._client.batches.create(
                input_file_id=input_file_id,
                endpoint=EMBEDDINGS_URL,
                completion_window="24h",
                metadata=batch_metadata,
            )
            return created.model_dump()

        return to_provider_batch(self._call("batch create", find_or_create,
                                            not_found=lambda: UnknownProviderFileError(input_file_id)))

    def _find_live_batch(self, batch_id: str) -> dict[str, Any] | None:
        """The newest batch carrying metadata batch_id that did not end failed/expired/cancelled.
        Batches list newest first; the scan stops at `submit_lookback_seconds` of history. Raw SDK
        calls: the caller runs the whole scan under the retry policy."""
        oldest = time.time() - self.submit_lookback_seconds
        page = self._client.batches.list(limit=100)
        while True:
            for batch in page.data:
                if batch.created_at < oldest:
                    return None
                if (batch.metadata or {}).get(
                    "batch_id"
                ) == batch_id and batch.status not in REPLACEABLE_STATUSES:
                    return batch.model_dump()
            if not page.has_next_page():
                return None
            page = page.get_next_page()

    def retrieve(self, provider_batch_id: str) -> ProviderBatch:
        batch = self._call(
            "batch retrieve",
            lambda: self._client.batches.retrieve(provider_batch_id),
            not_found=lambda: UnknownProviderBatchError(provider_batch_id),
        )
        return to_provider_batch(batch.model_dump())

    def list_batches(self, *, created_after: float) -> list[ProviderBatch]:
        """GET /v1/batches, 100 per page, newest first, until a batch older than `created_after`."""

        def scan() -> list[ProviderBatch]:
            listed: list[ProviderBatch] = []
            page = self._client.batches.list(limit=100)
            while True:
                for batch in page.data:
                    if batch.created_at < int(created_after):
                        return listed
                    listed.append(to_provider_batch(batch.model_dump()))
                if not page.has_next_page():
                    return listed
                page = page.get_next_page()

        return self._call("batch list", scan)

    @contextmanager
    def open_file(self, file_id: str) -> Iterator[Iterator[bytes]]:
        """GET /v1/files/{id}/content as a stream of chunks (the SDK's streaming response: the request
        is sent on entering, so a 404 raises UnknownProviderFileError here; the connection closes on
        leaving). A connection lost mid-stream raises ProviderTransientError from the iterator."""

        def send() -> tuple[Any, Any]:
            manager = self._client.files.with_streaming_response.content(file_id)
            return manager, manager.__enter__()

        manager, response = self._call("file download", send,
                                       not_found=lambda: UnknownProviderFileError(file_id))
        try:
            yield _chunks(response, file_id)
        finally:
            manager.__exit__(None, None, None)

    def cancel(self, provider_batch_id: str) -> ProviderBatch:
        batch = self._call(
            "batch cancel",
            lambda: self._client.batches.cancel(provider_batch_id),
            not_found=lambda: UnknownProviderBatchError(provider_batch_id),
        )
        return to_provider_batch(batch.model_dump())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """POST /v1/embeddings (the synchronous path, for queries): float32 rows, shape
        (len(texts), dimensions). Asks for base64 and decodes it as little-endian float32 itself."""
        rows: list[np.ndarray] = []
        extra: dict[str, Any] = {"encoding_format": "base64"}
        if (dimensions := request_dimensions(self.model, self.dimensions)) is not None:
            extra["dimensions"] = dimensions
        for start in range(0, len(texts), MAX_INPUTS_PER_EMBEDDING_REQUEST):
            chunk = list(texts[start : start + MAX_INPUTS_PER_EMBEDDING_REQUEST])
            response = self._call(
                "embeddings",
                lambda chunk=chunk: self._client.embeddings.create(model=self.model, input=chunk, **extra),
            )
            for item in sorted(response.data, key=lambda item: item.index):
                rows.append(_decoded(item.embedding))
        return np.vstack(rows) if rows else np.empty((0, self.dimensions), dtype=np.float32)


def _decoded(embedding: str | list[float]) -> np.ndarray:
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype=BASE64_DTYPE).astype(np.float32)
    return np.asarray(embedding, dtype=np.float32)


def _chunks(response: Any, file_id: str) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes(DOWNLOAD_CHUNK_BYTES)
    except (httpx2.HTTPError, openai.APIError) as exc:
        raise ProviderTransientError(f"OpenAI file download of {file_id} broke off: {type(exc).__name__}: "
                                     f"{_message_of(exc)}") from exc


def _named(exc: BaseException | None) -> str:
    """The SDK's class name, with the status where that class does not say it (408 is APIStatusError)."""
    name = type(exc).__name__
    return f"{name} {exc.status_code}" if type(exc) is openai.APIStatusError else name


def _status_of(exc: BaseException | None) -> str:
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}" if status is not None else type(exc).__name__


def _message_of(exc: BaseException | None) -> str:
    """The API's own message, without request details (headers could carry the key)."""
    text = str(exc.message) if isinstance(exc, openai.APIError) else str(exc)
    return " ".join(text.split())[:500]  # one line, whatever the server sent
