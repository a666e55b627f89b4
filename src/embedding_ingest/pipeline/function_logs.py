"""Local invocations write their logs where Lambda's go: the workspace's log store (stores/log_store.py).

On Lambda, each invocation's output reaches CloudWatch Logs as `START RequestId: ID Version: $LATEST`,
the function's own lines, `END RequestId: ID` and `REPORT RequestId: ID  Duration: ...`, in the group
/aws/lambda/<function>-<stage>, on one stream per execution environment
(https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html). `function_logs()` does the same
around a local invocation: the steps' records (Powertools' JSON lines, with function, execution and
batch_id, plus the invocation's `function_request_id`) are kept from INFO up, whatever reaches stderr;
an environment is a process (a pool worker, or the runner's own process) per function. The request id
is the one the execution history records (asl_local.current_invocation()).

Writing the logs never fails a step: a store that cannot be written is reported on stderr, once.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from asl_local import current_invocation
from embedding_ingest.config import Settings
from embedding_ingest.metrics import SERVICE
from embedding_ingest.steps.logs import StepContextFilter, logger, step_log_context
from embedding_ingest.stores.log_store import LocalLogStore, log_group_name

# What Lambda keeps: the template deploys the functions with LOG_LEVEL=INFO.
STORED_LEVEL = logging.INFO


@dataclass
class _Invocation:
    lines: list[tuple[int, str]] = field(default_factory=list)


_current: contextvars.ContextVar[_Invocation | None] = contextvars.ContextVar("function_logs", default=None)
_lock = threading.Lock()
_installed: set[int] = set()  # process ids: a forked child starts without the handler's state
_streams: dict[tuple[int, str], str] = {}
_stores: dict[tuple[Path, int], LocalLogStore] = {}
_failed_once: set[str] = set()


class _StoreHandler(logging.Handler):
    """Keeps each record, formatted as Lambda's Powertools Logger writes it, for the invocation running
    in the calling thread (records outside any invocation are left to the other handlers)."""

    def __init__(self) -> None:
        super().__init__(STORED_LEVEL)
        self.setFormatter(LambdaPowertoolsFormatter(service=SERVICE))
        self.addFilter(StepContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        invocation = _current.get()
        if invocation is not None:
            invocation.lines.append((int(record.created * 1000), self.format(record)))


def _install() -> None:
    """Once per process: the store handler on the steps logger, which then passes INFO records on;
    what reached stderr before (the pool's JSON handler at LOG_LEVEL, or Python's last-resort handler
    for warnings) still does, at the level it had."""
    with _lock:
        if os.getpid() in _installed:
            return
        if not logger.handlers and not logging.getLogger().handlers:
            fallback = logging.StreamHandler()  # what logging.lastResort did before a handler existed
            fallback.setLevel(logging.WARNING)
            logger.addHandler(fallback)
        for handler in logger.handlers:
            if handler.level == logging.NOTSET:
                handler.setLevel(logger.getEffectiveLevel())
        logger.addHandler(_StoreHandler())
        if logger.getEffectiveLevel() > STORED_LEVEL:
            logger.setLevel(STORED_LEVEL)
        _installed.add(os.getpid())


def _stream(function_name: str) -> str:
    key = (os.getpid(), function_name)
    with _lock:
        if key not in _streams:
            _streams[key] = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{uuid.uuid4().hex}"
        return _streams[key]


def log_store(settings: Settings) -> LocalLogStore:
    """The workspace's log store (one instance per process and workspace)."""
    key = (settings.log_store_path.resolve(), settings.log_retention_days)
    with _lock:
        if key not in _stores:
            _stores[key] = LocalLogStore(settings.log_store_path, retention_days=settings.log_retention_days)
        return _stores[key]


@contextlib.contextmanager
def function_logs(settings: Settings, function_name: str) -> Iterator[None]:
    """Keep the log lines of the invocation of `function_name` run inside the block (see the module's
    docstring); they are written to the store when it ends, however it ends."""
    _install()
    called = current_invocation()
    request_id = called.request_id if called is not None else str(uuid.uuid4())
    started = time.time()
    invocation = _Invocation([(int(started * 1000), f"START RequestId: {request_id} Version: $LATEST")])
    token = _current.set(invocation)
    try:
        with step_log_context(function_request_id=request_id):
            yield
    finally:
        _current.reset(token)
        ended = time.time()
        duration = (ended - started) * 1000
        report = (f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
                  f"Billed Duration: {math.ceil(duration)} ms")
        invocation.lines += [(int(ended * 1000), f"END RequestId: {request_id}"), (int(ended * 1000), report)]
        _write(settings, function_name, invocation.lines)


def _write(settings: Settings, function_name: str, lines: list[tuple[int, str]]) -> None:
    group = log_group_name(function_name, settings.stage)
    try:
        log_store(settings).put_events(group, _stream(function_name), lines)
    except (sqlite3.Error, OSError) as exc:
        if group not in _failed_once:
            _failed_once.add(group)
            logging.getLogger(__name__).warning("function logs of %s not kept: %s", group, exc)
