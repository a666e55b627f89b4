"""Process crashes injected at the ports: proxies around the REAL LocalObjectStore / SqliteLedger that
number every write a step makes and, at one chosen write, "kill the process" before or after it lands.

A crash is a BaseException (handlers and the engine catch Exception only), and once it has fired the
proxies are dead: every later call from any thread raises it again, as nothing runs in a dead process.
Writes are numbered per step invocation (thread-local label set by `labelled_handlers`), so a point
`(step, position, method)` means "the position-th write of one invocation of step, which is method".
Writes from threads no step labelled (the lock heartbeat) are not numbered; they have their own cases.
Position 0 of every step ("entry") is a crash as the step starts, so steps that write nothing count too.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.ports import ObjectStore

When = Literal["before", "after"]
HEARTBEAT = "(heartbeat thread)"
ENTRY = "entry"  # the method of a step's position-0 point: the crash before the step does anything

OBJECT_WRITES = ("put_bytes", "upload_file", "delete")
LEDGER_WRITES = ("add_items", "claim_batch", "release_items", "mark_items_succeeded", "update_batch",
                 "sync_receipts", "claim_deletions", "forget_deleted",
                 "acquire_lock", "heartbeat", "release_lock", "publish_version", "forget_version")


class Crash(BaseException):  # noqa: N818 - not an error a program handles: the process is gone
    """The simulated death of the process."""


@dataclass(frozen=True, order=True)
class WritePoint:
    step: str
    position: int  # 1-based, within one invocation of `step`
    method: str

    def case_id(self, when: When) -> str:
        # only characters `pytest -k` accepts in an expression
        return f"{self.step.replace('/', '.')}-{self.position:02d}-{self.method}-{when}"


@dataclass
class _Invocation:
    step: str
    writes: int = 0


@dataclass
class CrashSwitch:
    """Shared by the proxies of one "process". `target`/`when` choose the crash; without a target the
    switch only records the write points it sees (the dry run)."""

    target: WritePoint | None = None
    when: When = "before"
    # method -> event to wait for before that write delegates (to make a background write happen first)
    hold_until: Mapping[str, threading.Event] = field(default_factory=dict)
    seen: set[WritePoint] = field(default_factory=set)
    steps: set[str] = field(default_factory=set)  # every step label invoked
    heartbeat_seen: threading.Event = field(default_factory=threading.Event)  # set once a beat was tried
    _arrivals: dict[str, threading.Event] = field(default_factory=dict)
    fired: WritePoint | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    @contextlib.contextmanager
    def invocation(self, step: str) -> Iterator[None]:
        """Label this thread's writes with `step`; the position-0 point "entry" is the step's start."""
        self._maybe_fire(WritePoint(step, 0, ENTRY), "before")
        with self._lock:
            self.steps.add(step)
        previous = getattr(self._local, "invocation", None)
        self._local.invocation = _Invocation(step)
        try:
            yield
        finally:
            self._local.invocation = previous

    def arrival(self, method: str) -> threading.Event:
        """Set when a write of `method` first reaches its `hold_until` gate."""
        with self._lock:
            return self._arrivals.setdefault(method, threading.Event())

    def check_alive(self) -> None:
        if self.fired is not None:
            raise Crash(f"the process died at {self.fired} ({self.when})")

    def _point(self, method: str) -> WritePoint:
        invocation: _Invocation | None = getattr(self._local, "invocation", None)
        if invocation is None:
            return WritePoint(HEARTBEAT, 0, method)
        invocation.writes += 1
        return WritePoint(invocation.step, invocation.writes, method)

    def _maybe_fire(self, point: WritePoint, when: When) -> None:
        with self._lock:
            self.check_alive()
            if point.position:  # entry and heartbeat points are not writes of the step
                self.seen.add(point)
            hit = self.target is not None and when == self.when and (
                point == self.target or (self.target.step == HEARTBEAT and point.step == HEARTBEAT
                                         and point.method == self.target.method))
            if hit:
                self.fired = point
                raise Crash(f"injected crash {when} {point}")

    def write(self, method: str, delegate: Callable[[], Any]) -> Any:
        point = self._point(method)
        try:
            self._maybe_fire(point, "before")
            gate = self.hold_until.get(method)
            if gate is not None:
                self.arrival(method).set()
                gate.wait(timeout=30)
                self.check_alive()
            result = delegate()
            self._maybe_fire(point, "after")
            return result
        finally:
            if point.step == HEARTBEAT and method == "heartbeat":
                self.heartbeat_seen.set()

    def read(self, delegate: Callable[[], Any]) -> Any:
        self.check_alive()
        return delegate()


class CrashingObjectStore(ObjectStore):
    """The real store behind every call; writes numbered and maybe crashed. The JSON helpers and
    delete_prefix come from ObjectStore and go through these methods, so they count too."""

    def __init__(self, inner: ObjectStore, switch: CrashSwitch) -> None:
        self.inner = inner
        self.switch = switch
        self.location = inner.location

    def put_bytes(self, key: str, data: bytes, *, if_none_match: bool = False,
                  if_match: str | None = None) -> str:
        return self.switch.write("put_bytes", lambda: self.inner.put_bytes(
            key, data, if_none_match=if_none_match, if_match=if_match))

    def upload_file(self, key: str, path: Path, *, if_none_match: bool = False) -> str:
        return self.switch.write("upload_file", lambda: self.inner.upload_file(
            key, path, if_none_match=if_none_match))

    def delete(self, key: str) -> None:
        return self.switch.write("delete", lambda: self.inner.delete(key))

    def get_bytes(self, key: str) -> bytes:
        return self.switch.read(lambda: self.inner.get_bytes(key))

    def head(self, key: str):
        return self.switch.read(lambda: self.inner.head(key))

    def list(self, prefix: str):
        return self.switch.read(lambda: list(self.inner.list(prefix)))

    def download_file(self, key: str, path: Path) -> None:
        return self.switch.read(lambda: self.inner.download_file(key, path))


class CrashingLedger:
    """The real ledger behind every call; the Ledger port's writes numbered and maybe crashed."""

    def __init__(self, inner: Any, switch: CrashSwitch) -> None:
        self._inner = inner
        self._switch = switch

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute
        if name in LEDGER_WRITES:
            return lambda *args, **kwargs: self._switch.write(name, lambda: attribute(*args, **kwargs))
        return lambda *args, **kwargs: self._switch.read(lambda: attribute(*args, **kwargs))


class CrashingProvider:
    """The real provider; `submit` (the side effect that costs money) is a numbered write."""

    def __init__(self, inner: Any, switch: CrashSwitch) -> None:
        self._inner = inner
        self._switch = switch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def submit(self, batch_id: str, requests_jsonl: bytes, metadata: Any) -> Any:
        return self._switch.write("provider.submit",
                                  lambda: self._inner.submit(batch_id, requests_jsonl, metadata))


def crashing_context(ctx: StepContext, switch: CrashSwitch) -> StepContext:
    return replace(ctx, objects=CrashingObjectStore(ctx.objects, switch),
                   ledger=CrashingLedger(ctx.ledger, switch))


def step_label(function_name: str, payload: Any) -> str:
    operation = payload.get("operation") if isinstance(payload, dict) else None
    return f"{function_name}/{operation}" if operation else function_name


def labelled_handlers(ctx: StepContext, switch: CrashSwitch) -> dict[str, Callable[[dict], dict]]:
    """Every real handler bound to `ctx`, each invocation labelled with its step for the switch."""

    def bind(name: str, handler: Callable[[dict, StepContext], dict]) -> Callable[[dict], dict]:
        def call(payload: dict) -> dict:
            with switch.invocation(step_label(name, payload)):
                return handler(payload, ctx)
        return call

    return {name: bind(name, handler) for name, handler in HANDLERS.items()}
