"""Retry and Catch policies every Task of our definitions carries.

Our transient error names are the class names of every subclass of TransientError, found by importing
each package's exceptions module and walking the class tree, so a new transient error is retried by
the workflow the moment it is defined (no list to keep in sync)."""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import Any

import embedding_ingest
from embedding_ingest.exceptions import TransientError

LAMBDA_SERVICE_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
RETRY_INTERVAL_SECONDS = 2
RETRY_BACKOFF_RATE = 2.0  # statelint wants a float
RETRY_MAX_ATTEMPTS = 6
RETRY_MAX_DELAY_SECONDS = 60  # at most 2+4+8+16+32+60 = 122 s of waits (about half that with jitter)
# A busy publish lock means another run's final merge (30-180 s in the reference) is in progress: wait
# longer for it than for a blip. At most 2+4+8+16+32+60x7 = 482 s (about 4 minutes with full jitter),
# well inside the lock TTL, so a crashed holder's lock has expired by the time the waits run out.
LOCK_BUSY_ERROR = "LockNotAcquiredError"
LOCK_WAIT_MAX_ATTEMPTS = 12


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
    backoff = {"IntervalSeconds": RETRY_INTERVAL_SECONDS, "MaxAttempts": RETRY_MAX_ATTEMPTS,
               "BackoffRate": RETRY_BACKOFF_RATE, "MaxDelaySeconds": RETRY_MAX_DELAY_SECONDS,
               "JitterStrategy": "FULL"}
    lock_wait = {**backoff, "MaxAttempts": LOCK_WAIT_MAX_ATTEMPTS}
    others = [name for name in transient_error_names() if name != LOCK_BUSY_ERROR]
    return [{"ErrorEquals": list(LAMBDA_SERVICE_ERRORS), **backoff},
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
