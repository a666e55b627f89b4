"""Structured JSON logs: every record a step writes carries the Lambda name, the execution and the
batch it concerns, so one filter finds everything about a batch (the reference's logging practice).

The steps log through the standard `logging` module; `step_log_context` puts fields (function,
execution, batch_id, ...) on every record written inside it, and StepContextFilter, on a handler, copies
them onto each record as attributes. The JSON is AWS Lambda Powertools' formatter: one object per line
with level, location, message, timestamp and service, then the step fields and `extra=` fields at the
top level. Inside Lambda the functions' Powertools Logger writes them (aws/functions/observability.py);
a local worker process gets the same lines on stderr (configure_json_logging).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, TextIO

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from embedding_ingest.metrics import SERVICE

logger = logging.getLogger("embedding_ingest.steps")

_step_fields: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "step_fields", default=MappingProxyType({}))


class StepContextFilter(logging.Filter):
    """Copies the current step fields onto each record passing a handler (an `extra=` field of the same
    name, set on the record already, wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _step_fields.get().items():
            if name not in record.__dict__:
                setattr(record, name, value)
        return True


@contextlib.contextmanager
def step_log_context(**fields: Any) -> Iterator[None]:
    """Add fields (function, execution, batch_id, ...) to every log record written inside the block."""
    merged = {**_step_fields.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _step_fields.set(merged)
    try:
        yield
    finally:
        _step_fields.reset(token)


def current_step_fields() -> Mapping[str, Any]:
    """The fields step_log_context has set here (for code that reports them elsewhere)."""
    return _step_fields.get()


def json_handler(stream: TextIO | None = None) -> logging.Handler:
    """A handler writing JSON lines (Powertools' formatter) with the step fields, to `stream` (stderr)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LambdaPowertoolsFormatter(service=SERVICE))
    handler.addFilter(StepContextFilter())
    return handler


def configure_json_logging(level: int | str = logging.INFO) -> None:
    """Install a JSON handler on the steps logger once (idempotent; local pool workers call it)."""
    if any(isinstance(h.formatter, LambdaPowertoolsFormatter) for h in logger.handlers):
        return
    logger.addHandler(json_handler())
    logger.setLevel(level)
