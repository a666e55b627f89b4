"""Toy task functions and helpers for the engine's functional tests (module-level so a process pool
can import them)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sleep_recorder import SleepRecorder

from asl_local.engine import LocalEngine
from asl_local.invokers import InProcessInvoker, Invoker
from embedding_ingest.exceptions import TerminalError, TransientError
from embedding_ingest.stores.exceptions import CorruptObjectError
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asl"


class TransientToyError(TransientError):
    pass


class ToyInputError(TerminalError):
    pass


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def make_engine(tmp_path: Path, handlers: Mapping[str, Callable[[dict], Any]] | Invoker,
                **options: Any) -> tuple[LocalEngine, SqliteLedger, SleepRecorder]:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    invoker = handlers if hasattr(handlers, "invoke") else InProcessInvoker(handlers)
    sleep = options.pop("sleep", SleepRecorder())
    return LocalEngine(ledger, invoker, sleep=sleep, **options), ledger, sleep


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
    raise ToyInputError(f"unknown toy function {function_name!r}")
