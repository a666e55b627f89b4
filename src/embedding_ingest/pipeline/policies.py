"""Retry and Catch policies every Task of our definitions carries.

Our transient error names are the class names of every subclass of TransientError, found by importing
each package's exceptions module and walking the class tree, so a new transient error is retried by
the workflow the moment it is defined (no list to keep in sync)."""

from __future__ import annotations

import importlib
import math
from functools import cache
from pathlib import Path
from typing import Any

import embedding_ingest
from embedding_ingest.exceptions import TransientError
from embedding_ingest.steps.lease import LOCK_WAIT_BUDGET_SECONDS, LOCK_WAIT_INTERVAL_SECONDS

# AWS's recommended retrier for Lambda's own transient failures (Step Functions developer guide, "Handle
# transient Lambda service exceptions": these five names, IntervalSeconds 2, MaxAttempts 6, BackoffRate 2;
# throttling is Lambda.TooManyRequestsException).
LAMBDA_SERVICE_ERRORS = (
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
RETRY_INTERVAL_SECONDS = 2
RETRY_BACKOFF_RATE = 2.0  # statelint wants a float
RETRY_MAX_ATTEMPTS = 6
RETRY_MAX_DELAY_SECONDS = 60  # at most 2+4+8+16+32+60 = 122 s of waits (about half that with jitter)
# A function that died without raising: "Unhandled errors in Lambda are reported as Lambda.Unknown ...
# These include out-of-memory errors and function timeouts" (same guide); a timeout during the Init
# phase is Sandbox.Timedout (Lambda developer guide, "Troubleshoot invocation issues"). The same input
# usually dies the same way, so one retry after a pause (a cold container, a neighbour's burst), no more.
LAMBDA_CRASH_ERRORS = ("Lambda.Unknown", "Sandbox.Timedout")
LAMBDA_CRASH_INTERVAL_SECONDS = 30
LAMBDA_CRASH_MAX_ATTEMPTS = 1
# A busy publish lock: the waiter watches the lease's record version across its retries and may take
# over only once it stayed unchanged for a whole lease on the waiter's side (steps/lease.py), so the
# waits are fixed (no backoff, no jitter: each one is a known lower bound of elapsed time) and their
# total outlasts the longest merge plus one lease and one heartbeat interval.
LOCK_BUSY_ERROR = "LockNotAcquiredError"
LOCK_WAIT_MAX_ATTEMPTS = math.ceil(LOCK_WAIT_BUDGET_SECONDS / LOCK_WAIT_INTERVAL_SECONDS)


def _import_exception_modules() -> None:
    root = Path(embedding_ingest.__file__).parent
    for module_file in sorted(root.glob("*/exceptions.py")):
        importlib.import_module(f"embedding_ingest.{module_file.parent.name}.exceptions")


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


@cache
def transient_error_names() -> tuple[str, ...]:
    """Sorted class names of TransientError and all its subclasses in the project."""
    _import_exception_modules()
    classes = {TransientError} | _subclasses(TransientError)
    return tuple(sorted({cls.__name__ for cls in classes if cls.__module__.startswith("embedding_ingest")}))


def retry_policy() -> list[dict[str, Any]]:
    """The Retry of every Task: Lambda's service errors, a crashed function (once), a busy lock (fixed
    waits), then every transient error of the project (TransientError's subclasses)."""
    backoff = {"IntervalSeconds": RETRY_INTERVAL_SECONDS, "MaxAttempts": RETRY_MAX_ATTEMPTS,
               "BackoffRate": RETRY_BACKOFF_RATE, "MaxDelaySeconds": RETRY_MAX_DELAY_SECONDS,
               "JitterStrategy": "FULL"}
    crashed = {"IntervalSeconds": LAMBDA_CRASH_INTERVAL_SECONDS, "MaxAttempts": LAMBDA_CRASH_MAX_ATTEMPTS,
               "BackoffRate": 1.0, "JitterStrategy": "NONE"}
    lock_wait = {"IntervalSeconds": LOCK_WAIT_INTERVAL_SECONDS, "MaxAttempts": LOCK_WAIT_MAX_ATTEMPTS,
                 "BackoffRate": 1.0, "JitterStrategy": "NONE"}
    others = [name for name in transient_error_names() if name != LOCK_BUSY_ERROR]
    return [{"ErrorEquals": list(LAMBDA_SERVICE_ERRORS), **backoff},
            {"ErrorEquals": list(LAMBDA_CRASH_ERRORS), **crashed},
            {"ErrorEquals": [LOCK_BUSY_ERROR], **lock_wait},
            {"ErrorEquals": others, **backoff}]


@cache
def configuration_error_names() -> tuple[str, ...]:
    """Sorted class names of ConfigurationError and all its subclasses: errors no retry and no other
    batch can get past (AccessDenied on the bucket, a missing table or secret)."""
    from embedding_ingest.exceptions import ConfigurationError

    _import_exception_modules()
    classes = {ConfigurationError} | _subclasses(ConfigurationError)
    return tuple(sorted({cls.__name__ for cls in classes if cls.__module__.startswith("embedding_ingest")}))


def fail_fast_catch(state: str) -> list[dict[str, Any]]:
    """Send configuration errors to `state` (a Fail state) ahead of a catch that would carry on: a
    misconfiguration stops the run at once instead of being recorded against every item in turn."""
    return [{"ErrorEquals": list(configuration_error_names()), "ResultPath": "$.error", "Next": state}]


def catch_to(state: str) -> list[dict[str, Any]]:
    """Catch everything catchable, keep the input, put the error at $.error and go to `state`."""
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": state}]


def fail_state(comment: str) -> dict[str, Any]:
    """A Fail state that ends the run with the caught error's own name and cause (from $.error)."""
    return {"Type": "Fail", "Comment": comment, "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
