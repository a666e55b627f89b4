"""The OpenAI Batch API through the official SDK.

Retries are ours (tenacity: exponential backoff with jitter, bounded attempts) and the SDK's own are
switched off, so one policy decides how long we wait. Retried: 429 (waiting at least its Retry-After),
500/502/503 and other 5xx, connection errors and timeouts. Not retried: 400/401/403/404 and other
4xx, which fail at once with a one-line message naming the call. The API key stays inside the
client: nothing here logs or formats the client or its options.

Inside Lambda one call must give up before the function's timeout does: openai_call_budget fits the
attempts, each request's timeout and the longest wait (Retry-After included) into CALL_BUDGET_SECONDS.
Without a budget: 5 attempts, the SDK's 600 s timeout, waits up to 120 s.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.providers.base import ProviderBatch
from embedding_ingest.providers.batch_files import EMBEDDINGS_URL, check_batch_limits
from embedding_ingest.providers.batch_objects import to_provider_batch
from embedding_ingest.providers.exceptions import (
    ProviderRequestError,
    ProviderTransientError,
    UnknownProviderBatchError,
    UnknownProviderFileError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_ERRORS = (
    openai.RateLimitError,
    openai.APIConnectionError,  # includes APITimeoutError
    openai.InternalServerError,
)
REPLACEABLE_STATUSES = frozenset({"failed", "expired", "cancelled"})
MAX_INPUTS_PER_EMBEDDING_REQUEST = 2_048
DEFAULT_SUBMIT_LOOKBACK_SECONDS = 7 * 24 * 3600
MAX_RETRY_AFTER_SECONDS = 120.0  # a longer Retry-After is better left to the next run
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


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's Retry-After (seconds or an HTTP date; or retry-after-ms), if the error carries one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value.strip() else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed is not None else None


class wait_retry_after_or(wait_base):  # noqa: N801 - named like tenacity's own waits
    """Wait what the server asked (Retry-After) or the fallback backoff, whichever is longer, never more
    than `cap`."""

    def __init__(self, fallback: wait_base, cap: float = MAX_RETRY_AFTER_SECONDS) -> None:
        self.fallback, self.cap = fallback, cap

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self.fallback(retry_state)
        asked = retry_after_seconds(retry_state.outcome.exception() if retry_state.outcome else None)
        return min(self.cap, backoff if asked is None else max(backoff, asked))


def _supports_dimensions(model: str) -> bool:
    return model.startswith("text-embedding-3")


class OpenAIBatchProvider:
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
            retry=retry_if_exception_type(TRANSIENT_ERRORS),
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=lambda state: log.warning(
                "OpenAI %s failed (%s), attempt %d of %d; retrying",
                what,
                type(state.outcome.exception()).__name__,
                state.attempt_number,
                self.max_attempts,
            ),
        )
        try:
            return retrying(fn)
        except RetryError as exc:  # only raised when every attempt failed transiently
            last = exc.last_attempt.exception()
            raise ProviderTransientError(
                f"OpenAI {what} still failing after {self.max_attempts} attempts: {type(last).__name__}: "
                f"{_message_of(last)}"
            ) from last
        except openai.NotFoundError as exc:
            if not_found is not None:
                raise not_found() from exc
            raise ProviderRequestError(f"OpenAI {what}: not found: {_message_of(exc)}") from exc
        except openai.APIError as exc:
            status = getattr(exc, "status_code", None)
            code = f" (HTTP {status})" if status is not None else ""
            raise ProviderRequestError(
                f"OpenAI {what} rejected{code}: {type(exc).__name__}: {_message_of(exc)}"
            ) from exc

    # -- the BatchProvider port -------------------------------------------------------------------
    def submit(self, batch_id: str, requests_jsonl: bytes, metadata: Mapping[str, str]) -> ProviderBatch:
        check_batch_limits(requests_jsonl)
        existing = self._call("batch list", lambda: self._find_live_batch(batch_id))
        if existing is not None:
            log.info("batch %s already submitted as %s; not submitting again", batch_id, existing["id"])
            return to_provider_batch(existing)
        uploaded = self._call(
            "file upload",
            lambda: self._client.files.create(file=(f"{batch_id}.jsonl", requests_jsonl), purpose="batch"),
        )
        batch_metadata = {**metadata, "batch_id": batch_id}
        attempts = 0

        def find_or_create() -> dict[str, Any]:
            # A create that timed out or hit a 5xx may still have made the batch: look before retrying.
            nonlocal attempts
            attempts += 1
            if attempts > 1 and (found := self._find_live_batch(batch_id)) is not None:
                return found
            created = self._client.batches.create(
                input_file_id=uploaded.id,
                endpoint=EMBEDDINGS_URL,
                completion_window="24h",
                metadata=batch_metadata,
            )
            return created.model_dump()

        return to_provider_batch(self._call("batch create", find_or_create))

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

    def download(self, file_id: str) -> bytes:
        response = self._call(
            "file download",
            lambda: self._client.files.content(file_id),
            not_found=lambda: UnknownProviderFileError(file_id),
        )
        return response.content

    def cancel(self, provider_batch_id: str) -> ProviderBatch:
        batch = self._call(
            "batch cancel",
            lambda: self._client.batches.cancel(provider_batch_id),
            not_found=lambda: UnknownProviderBatchError(provider_batch_id),
        )
        return to_provider_batch(batch.model_dump())

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        extra: dict[str, Any] = {"dimensions": self.dimensions} if _supports_dimensions(self.model) else {}
        for start in range(0, len(texts), MAX_INPUTS_PER_EMBEDDING_REQUEST):
            chunk = list(texts[start : start + MAX_INPUTS_PER_EMBEDDING_REQUEST])
            response = self._call(
                "embeddings",
                lambda chunk=chunk: self._client.embeddings.create(model=self.model, input=chunk, **extra),
            )
            vectors.extend(
                list(item.embedding) for item in sorted(response.data, key=lambda item: item.index)
            )
        return vectors


def _message_of(exc: BaseException | None) -> str:
    """The API's own message, without request details (headers could carry the key)."""
    text = str(exc.message) if isinstance(exc, openai.APIError) else str(exc)
    return " ".join(text.split())[:500]  # one line, whatever the server sent
