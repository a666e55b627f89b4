"""Toy task functions and helpers for the engine's functional tests (module-level so a process pool
can import them). Nothing here imports embedding_ingest: the engine's tests run without it."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sleep_recorder import SleepRecorder

from asl_local.clock import RealClock
from asl_local.engine import LocalEngine
from asl_local.invokers import InProcessInvoker, Invoker, current_invocation
from asl_local.store import InMemoryExecutionStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asl"


class TransientToyError(Exception):
    """A failure the fixtures' Retry names (by class name, as Step Functions matches errors)."""


class ToyInputError(Exception):
    """A failure no fixture retries."""


class CorruptObjectError(Exception):
    """An error whose __init__ takes two arguments, so pickle cannot rebuild it from its message."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"corrupt object {key!r}: {reason}")
        self.key = key
        self.reason = reason


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def make_engine(handlers: Mapping[str, Callable[[dict], Any]] | Invoker,
                **options: Any) -> tuple[LocalEngine, InMemoryExecutionStore, SleepRecorder]:
    """(engine, its store, the recorder its waits go to): an engine on a fresh in-memory store, calling
    `handlers` (function name -> callable) in this thread, or through the Invoker given. Waits are
    recorded, not waited, unless `clock=` is given; other `options` are LocalEngine's."""
    store = InMemoryExecutionStore()
    invoker = handlers if hasattr(handlers, "invoke") else InProcessInvoker(handlers)
    sleep = SleepRecorder()
    clock = options.pop("clock", None) or RealClock(sleep_function=sleep)
    return LocalEngine(store, invoker, clock=clock, **options), store, sleep


def add(payload: dict[str, Any]) -> dict[str, Any]:
    return {"sum": payload["a"] + payload["b"], "received": sorted(payload)}


class FailingThenOk:
    """Raises the given exceptions one per call, then succeeds."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return {"ok": True, "calls": self.calls}


class ConcurrencyProbe:
    """Counts calls in flight. Each call waits until `limit` calls are in flight together (or every
    call has started), so the highest count seen is exactly the concurrency the engine allowed."""

    def __init__(self, limit: int, total: int) -> None:
        self.limit = limit
        self.total = total
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = 0
        self.inputs: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            self.in_flight += 1
            self.started += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.inputs.append(payload)
            self._cond.notify_all()
            # The timeout only guards against a hung test; the assertions are on counts.
            self._cond.wait_for(lambda: self.in_flight >= self.limit or self.started >= self.total,
                                timeout=30)
            self.in_flight -= 1
        return {"done": payload["index"]}


def toy_process_target(function_name: str, payload: dict[str, Any], tag: str) -> dict[str, Any]:
    """The ProcessPoolInvoker target of the tests: dispatches on the function name."""
    if function_name == "whoami":
        return {"pid": os.getpid(), "tag": tag, "echo": payload}
    if function_name == "corrupt":
        # Its __init__ takes two arguments: it could not be unpickled as a plain exception.
        raise CorruptObjectError(payload["key"], "checksum mismatch")
    if function_name == "die":
        os._exit(3)
    if function_name == "invocation":
        invocation = current_invocation()
        return {"pid": os.getpid(), "request_id": invocation.request_id,
                "function_name": invocation.function_name, "arn": invocation.invoked_function_arn}
    raise ToyInputError(f"unknown toy function {function_name!r}")
