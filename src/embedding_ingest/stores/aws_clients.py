"""boto3 clients for the AWS adapters, built one way everywhere (also when an adapter is rebuilt in a
worker process): botocore's "standard" retry mode, and every retry logged.

Throttling (S3 503 SlowDown, DynamoDB ProvisionedThroughputExceededException / ThrottlingException)
and 5xx answers are retried by the SDK with exponential backoff and full jitter, up to MAX_ATTEMPTS
calls in all (botocore's standard mode, which also limits retries per client with a token bucket).
What is still failing after that reaches the adapters, which raise StoreUnavailableError (transient),
and the state machine's Retry takes over. Errors that retrying cannot fix (AccessDenied, NoSuchBucket)
are not retried by the SDK.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.config import Config

MAX_ATTEMPTS = 8  # botocore's standard mode default is 3: too few for a burst of throttling
_LAST_ERROR = "embedding_ingest_last_error"

logger = logging.getLogger("embedding_ingest.aws")


def client_config() -> Config:
    return Config(retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS})


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
        logger.warning(f"AWS {operation_name} retried (attempt {attempt} of {MAX_ATTEMPTS}) after "
                       f"{context.get(_LAST_ERROR) or 'an error'}",
                       extra={"aws_operation": operation_name, "attempt": attempt,
                              "after": context.get(_LAST_ERROR)})


def make_client(service: str, *, endpoint_url: str | None, region: str | None) -> Any:
    """A boto3 client of `service` with the retry policy above and its retries logged."""
    import boto3

    client = boto3.client(service, endpoint_url=endpoint_url, region_name=region, config=client_config())
    events = client.meta.events
    events.register(f"needs-retry.{client.meta.service_model.service_id.hyphenize()}", _note_error)
    events.register(f"request-created.{client.meta.service_model.service_id.hyphenize()}", _log_retry)
    return client
