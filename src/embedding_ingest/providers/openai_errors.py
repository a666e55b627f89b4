"""Which OpenAI errors are retried, which stop everything, and how long to wait: the SDK's own rules,
because our client switches the SDK's retries off to keep one policy (openai_batch.py).

Sources: openai-python 3.57 `_base_client._should_retry` and `_calculate_retry_timeout`, in this order:
a Retry-After above 120 s is not retried; `x-should-retry: true|false` decides; else 408, 409 (lock
timeouts), 429 and >= 500 are retried, as are connection errors and timeouts. The wait is
`retry-after-ms`, else `retry-after` (seconds or an HTTP date), when 0 < wait <= 120 s.

One deviation on purpose: a 429 whose error is a billing one (`insufficient_quota` and the newer codes
below; older bodies carry it as `type` with a null `code`) is not a rate limit, and neither is a 401/403
(a revoked key): retrying cannot help and every retry of a submit would upload again. They raise
ProviderAccountError, whatever `x-should-retry` says.
"""

from __future__ import annotations

import email.utils
import time
from typing import Literal

import openai
from tenacity import RetryCallState
from tenacity.wait import wait_base

from embedding_ingest.providers.exceptions import ProviderAccountError

MAX_RETRY_AFTER_SECONDS = 120.0  # the SDK's MAX_RETRY_AFTER_DELAY: a longer wait is left to the next run
# help.openai.com/en/articles/6891831 (insufficient_quota); learn.microsoft.com
# ".../openai-insufficient-quota" lists the newer billing codes under the same type.
QUOTA_CODES = frozenset({"insufficient_quota", "credit_balance_exhausted",
                         "organization_spend_limit_exceeded", "project_spend_limit_exceeded",
                         "organization_usage_limit_exceeded"})
_RETRIED_STATUSES = frozenset({408, 409, 429})

Verdict = Literal["retry", "wait_too_long", "terminal"]


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's retry-after-ms or Retry-After (seconds or an HTTP date), if the error carries one."""
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


def account_problem(exc: BaseException) -> ProviderAccountError | None:
    """The one-line account error `exc` is (quota or billing, a refused key), or None."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    code = getattr(exc, "code", None)
    error_type = getattr(exc, "type", None)
    status = exc.status_code
    if code in QUOTA_CODES or error_type in QUOTA_CODES:
        what = code or error_type
        return ProviderAccountError(f"OpenAI quota or billing limit reached ({status} {what}): add credit "
                                    "or raise the limit at platform.openai.com; nothing was submitted or "
                                    "changed")
    if status in (401, 403):
        what = code or error_type or "refused"
        return ProviderAccountError(f"OpenAI refused the API key ({status} {what}): check OPENAI_API_KEY and "
                                    "the key's project permissions; nothing was submitted or changed")
    return None


def verdict(exc: BaseException) -> Verdict:
    """What to do about one failed call (account errors are sorted out before: account_problem)."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return "retry"
    if not isinstance(exc, openai.APIStatusError):
        return "terminal"
    asked = retry_after_seconds(exc)
    if asked is not None and asked > MAX_RETRY_AFTER_SECONDS:
        return "wait_too_long"
    should_retry = exc.response.headers.get("x-should-retry")
    if should_retry == "true":
        return "retry"
    if should_retry == "false":
        return "terminal"
    status = exc.status_code
    return "retry" if status in _RETRIED_STATUSES or status >= 500 else "terminal"


def is_retried(exc: BaseException) -> bool:
    """The tenacity predicate: retry only what `verdict` retries and is not an account problem."""
    return account_problem(exc) is None and verdict(exc) == "retry"


class wait_retry_after_or(wait_base):  # noqa: N801 - named like tenacity's own waits
    """Wait what the server asked (Retry-After) or the fallback backoff, whichever is longer, never more
    than `cap` (a call budget's longest wait: providers/openai_batch.openai_call_budget)."""

    def __init__(self, fallback: wait_base, cap: float = MAX_RETRY_AFTER_SECONDS) -> None:
        self.fallback, self.cap = fallback, cap

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self.fallback(retry_state)
        asked = retry_after_seconds(retry_state.outcome.exception() if retry_state.outcome else None)
        return min(self.cap, backoff if asked is None else max(backoff, asked))
