"""boto3 clients for the AWS adapters, built one way everywhere (also when an adapter is rebuilt in a
worker process): botocore's "standard" retry mode, and every retry logged.

Throttling (S3 503 SlowDown, DynamoDB ProvisionedThroughputExceededException / ThrottlingException)
and 5xx answers are retried by the SDK with exponential backoff and full jitter, up to MAX_ATTEMPTS
calls in all (botocore's standard mode, which also limits retries per client with a token bucket).
What is still failing after that reaches the adapters, which raise StoreUnavailableError (transient),
and the state machine's Retry takes over. Errors that retrying cannot fix (AccessDenied, NoSuchBucket)
are not retried by the SDK.

Inside Lambda a call must give up before the function's timeout does (a function killed mid-call is
Lambda.Unknown, with no word of which call hung): given a budget (CALL_BUDGET_SECONDS, set per function
by the template), call_budget picks the attempts and the connect and read timeouts so that the worst
case of one call (every attempt timing out, every wait at its longest) fits in it. Without a budget
(the CLI, tests) botocore's own timeouts apply (60 s connect, 60 s read).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from embedding_ingest.exceptions import ConfigurationError

MAX_ATTEMPTS = 8  # botocore's standard mode default is 3: too few for a burst of throttling
# botocore's standard mode waits rand(0, 1) * min(2 ** (n - 1), 20) seconds after attempt n (throttling
# scale), raised by an x-amz-retry-after header by at most 5 more (botocore/retries/standard.py).
BACKOFF_CAP_SECONDS = 20.0
RETRY_AFTER_EXTRA_SECONDS = 5.0
BOTOCORE_TIMEOUT_SECONDS = 60.0  # botocore's default connect and read timeouts
MIN_ATTEMPT_SECONDS = 8.0  # an attempt given less would time out on a slow but healthy answer
_LAST_ERROR = "embedding_ingest_last_error"

logger = logging.getLogger("embedding_ingest.aws")
_budgets: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class CallBudget:
    """How one boto3 call may spend its time: attempts, and each attempt's connect and read timeouts."""

    attempts: int
    connect_timeout: float
    read_timeout: float

    @property
    def worst_case_seconds(self) -> float:
        """Every attempt timing out on connect and read, every wait at its longest."""
        waits = backoff_worst_seconds(self.attempts)
        return self.attempts * (self.connect_timeout + self.read_timeout) + waits


def backoff_worst_seconds(attempts: int) -> float:
    """The longest botocore's standard mode can wait between `attempts` attempts, in all."""
    return sum(min(2.0 ** (n - 1), BACKOFF_CAP_SECONDS) + RETRY_AFTER_EXTRA_SECONDS
               for n in range(1, attempts))


def call_budget(budget_seconds: float | None) -> CallBudget:
    """The most attempts (up to MAX_ATTEMPTS) whose worst case fits `budget_seconds`, each attempt getting
    an equal share (a quarter of it, at most 10 s, to connect). None: botocore's timeouts, MAX_ATTEMPTS.
    Raises ConfigurationError when not even one attempt fits."""
    if budget_seconds is None:
        return CallBudget(MAX_ATTEMPTS, BOTOCORE_TIMEOUT_SECONDS, BOTOCORE_TIMEOUT_SECONDS)
    for attempts in range(MAX_ATTEMPTS, 0, -1):
        per_attempt = (budget_seconds - backoff_worst_seconds(attempts)) / attempts
        if per_attempt >= MIN_ATTEMPT_SECONDS:
            connect = min(10.0, per_attempt / 4)
            return CallBudget(attempts, connect, min(BOTOCORE_TIMEOUT_SECONDS, per_attempt - connect))
    raise ConfigurationError(f"CALL_BUDGET_SECONDS={budget_seconds:g}: too short for one AWS call "
                             f"(at least {MIN_ATTEMPT_SECONDS:g} s)")


def client_config(budget_seconds: float | None = None) -> Config:
    budget = call_budget(budget_seconds)
    # total_max_attempts counts the first attempt too (botocore reads "max_attempts" as retries)
    return Config(retries={"mode": "standard", "total_max_attempts": budget.attempts},
                  connect_timeout=budget.connect_timeout, read_timeout=budget.read_timeout)


def _note_error(response: Any = None, request_dict: Any = None, caught_exception: Any = None,
                **_: Any) -> None:
    """needs-retry: remember why this attempt failed, for the log line of the next one."""
    if request_dict is None:
        return
    reason = None
    if caught_exception is not None:
        reason = type(caught_exception).__name__
    elif response is not None:
        http, parsed = response
        code = (parsed or {}).get("Error", {}).get("Code")
        if code or http.status_code >= 400:
            reason = f"{code or 'HTTP'} {http.status_code}"
    request_dict.setdefault("context", {})[_LAST_ERROR] = reason


def _log_retry(request: Any = None, operation_name: str = "", **_: Any) -> None:
    """request-created: an attempt after the first is a retry; say which call and why."""
    context = getattr(request, "context", None) or {}
    attempt = (context.get("retries") or {}).get("attempt", 1)
    if attempt > 1:
        total = (context.get("retries") or {}).get("max") or MAX_ATTEMPTS  # botocore seeds "max" first
        logger.warning(f"AWS {operation_name} retried (attempt {attempt} of {total}) after "
                       f"{context.get(_LAST_ERROR) or 'an error'}",
                       extra={"aws_operation": operation_name, "attempt": attempt,
                              "after": context.get(_LAST_ERROR)})


def make_client(service: str, *, endpoint_url: str | None, region: str | None,
                budget_seconds: float | None = None) -> Any:
    """A boto3 client of `service` with the retry policy above (fitted to `budget_seconds` per call, when
    given) and its retries logged."""
    import boto3

    client = boto3.client(service, endpoint_url=endpoint_url, region_name=region,
                          config=client_config(budget_seconds))
    if budget_seconds is not None:
        _budgets[client] = budget_seconds
    events = client.meta.events
    events.register(f"needs-retry.{client.meta.service_model.service_id.hyphenize()}", _note_error)
    events.register(f"request-created.{client.meta.service_model.service_id.hyphenize()}", _log_retry)
    return client


def budget_of(client: Any) -> float | None:
    """The budget `client` was made with (None: none), so an adapter reopened elsewhere keeps it."""
    return _budgets.get(client)
