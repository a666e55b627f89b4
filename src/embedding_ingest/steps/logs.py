"""Structured JSON logs: every record a step writes carries the Lambda name, the execution and the
batch it concerns, so one filter finds everything about a batch (the reference's logging practice)."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

logger = logging.getLogger("embedding_ingest.steps")

_step_fields: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "step_fields", default=MappingProxyType({}))

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, step context, and `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "step_context", None) or _step_fields.get())
        entry.update({k: v for k, v in vars(record).items()
                      if k not in _STANDARD_ATTRS and k != "step_context"})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.step_context = dict(_step_fields.get())
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


def configure_json_logging(level: int | str = logging.INFO) -> None:
    """Install the JSON formatter on the steps logger once (idempotent; Lambda entry points and pool
    workers call it)."""
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)


logger.addFilter(_ContextFilter())
