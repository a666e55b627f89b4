"""Process crashes injected at the ports: proxies around the REAL LocalObjectStore / SqliteLedger that
record every write a step makes and, at one chosen write, "kill the process" before or after it lands.

A crash is a BaseException (handlers and the engine catch Exception only), and once it has fired the
proxies are dead: every later call from any thread raises it again, as nothing runs in a dead process.

A point names a write by what it does, not by where it falls in a run: `(step, method, shape,
occurrence)` is "the occurrence-th `method` of an object whose key has this shape, within one attempt
of step" (one handler invocation; a retry is a new attempt, a Map iteration another one). So a retry
that skips a write it finds already done (FinalMerge's content-addressed tombstones object) does not
move the points after it: they are still found, in that attempt, by what they write. Writes from
threads no step labelled (the lock heartbeat) are `(HEARTBEAT, method)`; they have their own cases.
The "entry" point of every step is a crash as the step starts, so steps that write nothing count too.
The switch keeps every attempt it saw (its writes and how it ended), so a case whose point was never
reached can say what happened instead.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import PollEvent
from embedding_ingest.steps.poll import resolve_batch
from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.ports import ObjectStore
from embedding_ingest.stores.records import BatchOperation

When = Literal["before", "after"]
HEARTBEAT = "(heartbeat thread)"
ENTRY = "entry"  # the method of a step's entry point: the crash before the step does anything

OBJECT_WRITES = ("put_bytes", "upload_file", "delete")
LEDGER_WRITES = ("add_items", "claim_batch", "release_items", "mark_items_succeeded", "update_batch",
                 "sync_receipts", "claim_deletions", "forget_deleted",
                 "acquire_lock", "heartbeat", "release_lock", "publish_version", "forget_version")

# What differs between two runs of the same story inside an object key: uuids, hex digests and numbers
# (execution names, chunk and group indexes). What is left says which object the write is for.
_KEY_VARIABLE = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|[0-9a-f]{12,}|[0-9]+")


def key_shape(key: str) -> str:
    """`key` with its ids, digests and numbers as `*`: "lines/snapshot/segments/*/manifest.json"."""
    return _KEY_VARIABLE.sub("*", key)


class Crash(BaseException):  # noqa: N818 - not an error a program handles: the process is gone
    """The simulated death of the process."""


@dataclass(frozen=True)
class WritePoint:
    """The `occurrence`-th write `method` (of an object of key shape `shape`; "" for ledger and provider
    writes) within one attempt of `step`. Entry points have method ENTRY, heartbeat writes step
    HEARTBEAT; both have occurrence 0."""

    step: str
    method: str
    shape: str = ""
    occurrence: int = 0

    @property
    def operation(self) -> str:
        return f"{self.method} {self.shape}" if self.shape else self.method

    def __str__(self) -> str:
        nth = f" #{self.occurrence}" if self.occurrence else ""
        return f"{self.step}: {self.operation}{nth}"

    def case_id(self, when: When) -> str:
        # only characters `pytest -k` accepts in an expression
        parts = [self.step, self.method] + ([self.shape] if self.shape else [])
        parts += [str(self.occurrence)] if self.occurrence else []
        return "-".join(parts + [when]).replace("/", ".").replace("*", "_")


@dataclass
class Attempt:
    """One handler invocation as the switch saw it: its writes in order and how it ended."""

    step: str
    number: int  # 1-based among the invocations of `step` in this process
    writes: list[WritePoint] = field(default_factory=list)
    outcome: str = "still running"
    error: str | None = None  # the exception's class name when it raised one (not a Crash)
    _counts: Counter = field(default_factory=Counter)

    def next_point(self, method: str, shape: str) -> WritePoint:
        self._counts[method, shape] += 1
        point = WritePoint(self.step, method, shape, self._counts[method, shape])
        self.writes.append(point)
        return point

    def describe(self) -> str:
        writes = "; ".join(f"{p.operation} #{p.occurrence}" for p in self.writes) or "no writes"
        return f"attempt {self.number} {self.outcome}; writes tried: {writes}"


@dataclass
class CrashSwitch:
    """Shared by the proxies of one "process". `target`/`when` choose the crash; without a target the
    switch only records the write points it sees (the dry run)."""

    target: WritePoint | None = None
    when: When = "before"
    # method -> event to wait for before that write delegates (to make a background write happen first)
    hold_until: Mapping[str, threading.Event] = field(default_factory=dict)
    seen: dict[WritePoint, int] = field(default_factory=dict)  # point -> its index in the first attempt seen
    steps: set[str] = field(default_factory=set)  # every step label invoked
    attempts: list[Attempt] = field(default_factory=list)  # in the order they started
    heartbeat_seen: threading.Event = field(default_factory=threading.Event)  # set once a beat was tried
    _arrivals: dict[str, threading.Event] = field(default_factory=dict)
    fired: WritePoint | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    @contextlib.contextmanager
    def invocation(self, step: str) -> Iterator[None]:
        """Label this thread's writes as one attempt of `step`; the entry point is the step's start."""
        self._maybe_fire(WritePoint(step, ENTRY), "before")
        with self._lock:
            self.steps.add(step)
            attempt = Attempt(step, 1 + sum(1 for a in self.attempts if a.step == step))
            self.attempts.append(attempt)
        previous = getattr(self._local, "attempt", None)
        self._local.attempt = attempt
        try:
            yield
        except Crash:
            attempt.outcome = "died"
            raise
        except Exception as exc:
            attempt.outcome, attempt.error = f"raised {type(exc).__name__}: {exc}", type(exc).__name__
            raise
        else:
            attempt.outcome = "returned"
        finally:
            self._local.attempt = previous

    def points(self, steps: set[str] | None = None) -> list[WritePoint]:
        """The write points seen (of `steps`, default all), each step's in the order its writes came."""
        return sorted((p for p in self.seen if steps is None or p.step in steps),
                      key=lambda p: (p.step, self.seen[p]))

    def attempts_of(self, step: str) -> list[Attempt]:
        return [a for a in self.attempts if a.step == step]

    def arrival(self, method: str) -> threading.Event:
        """Set when a write of `method` first reaches its `hold_until` gate."""
        with self._lock:
            return self._arrivals.setdefault(method, threading.Event())

    def check_alive(self) -> None:
        if self.fired is not None:
            raise Crash(f"the process died at {self.fired} ({self.when})")

    def _point(self, method: str, key: str | None) -> WritePoint:
        attempt: Attempt | None = getattr(self._local, "attempt", None)
        if attempt is None:
            return WritePoint(HEARTBEAT, method)
        point = attempt.next_point(method, key_shape(key) if key is not None else "")
        with self._lock:
            self.seen.setdefault(point, len(attempt.writes))
        return point

    def _maybe_fire(self, point: WritePoint, when: When) -> None:
        with self._lock:
            self.check_alive()
            if self.target is not None and when == self.when and point == self.target:
                self.fired = point
                raise Crash(f"injected crash {when} {point}")

    def write(self, method: str, delegate: Callable[[], Any], *, key: str | None = None) -> Any:
        point = self._point(method, key)
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
            key, data, if_none_match=if_none_match, if_match=if_match), key=key)

    def upload_file(self, key: str, path: Path, *, if_none_match: bool = False, move: bool = False,
                    sha256: str | None = None) -> str:
        return self.switch.write("upload_file", lambda: self.inner.upload_file(
            key, path, if_none_match=if_none_match, move=move, sha256=sha256), key=key)

    def delete(self, key: str) -> None:
        return self.switch.write("delete", lambda: self.inner.delete(key), key=key)

    def get_bytes(self, key: str) -> bytes:
        return self.switch.read(lambda: self.inner.get_bytes(key))

    def head(self, key: str):
        return self.switch.read(lambda: self.inner.head(key))

    def list(self, prefix: str):
        return self.switch.read(lambda: list(self.inner.list(prefix)))

    def download_file(self, key: str, path: Path) -> None:
        return self.switch.read(lambda: self.inner.download_file(key, path))


class CrashingLedger:
    """The real ledger behind every call; the Ledger port's writes recorded and maybe crashed."""

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
    """The real provider; what changes its state (an upload, a batch created: the side effects that
    cost money; a cancel) is a numbered write."""

    def __init__(self, inner: Any, switch: CrashSwitch) -> None:
        self._inner = inner
        self._switch = switch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def submit(self, batch_id: str, requests_jsonl: bytes, metadata: Any) -> Any:
        return self._switch.write("provider.submit",
                                  lambda: self._inner.submit(batch_id, requests_jsonl, metadata))

    def upload(self, batch_id: str, requests_jsonl: bytes) -> str:
        return self._switch.write("provider.upload", lambda: self._inner.upload(batch_id, requests_jsonl))

    def create(self, batch_id: str, input_file_id: str, metadata: Any) -> Any:
        return self._switch.write("provider.create",
                                  lambda: self._inner.create(batch_id, input_file_id, metadata))

    def cancel(self, provider_batch_id: str) -> Any:
        return self._switch.write("provider.cancel", lambda: self._inner.cancel(provider_batch_id))


def crashing_context(ctx: StepContext, switch: CrashSwitch) -> StepContext:
    return replace(ctx, objects=CrashingObjectStore(ctx.objects, switch),
                   ledger=CrashingLedger(ctx.ledger, switch))


def step_label(function_name: str, payload: Any, ctx: StepContext) -> str:
    """"function/operation" (or the function alone). A poll of a deletion batch writes what a poll of an
    embedding batch writes, in another order and with other content; ".../deletions" tells them apart
    (".../metadata" a metadata batch's, issue 23), so that the Map iterations of one poll step do not
    share (and race for) the same points."""
    operation = payload.get("operation") if isinstance(payload, dict) else None
    label = f"{function_name}/{operation}" if operation else function_name
    if function_name.endswith("-poll"):
        label += _POLLED.get(_polled_operation(payload, ctx), "")
    return label


_POLLED = {BatchOperation.DELETE: "/deletions", BatchOperation.METADATA: "/metadata"}


def _polled_operation(payload: Any, ctx: StepContext) -> BatchOperation | None:
    try:
        summary = ctx.ledger.get_batch(resolve_batch(PollEvent.model_validate(payload), ctx).batch_id)
    except Exception:  # a bad event: the handler itself says what is wrong with it
        return None
    return summary.operation if summary is not None else None


def labelled_handlers(ctx: StepContext, switch: CrashSwitch) -> dict[str, Callable[[dict], dict]]:
    """Every real handler bound to `ctx`, each invocation labelled as an attempt of its step."""

    def bind(name: str, handler: Callable[[dict, StepContext], dict]) -> Callable[[dict], dict]:
        def call(payload: dict) -> dict:
            with switch.invocation(step_label(name, payload, ctx)):
                return handler(payload, ctx)
        return call

    return {name: bind(name, handler) for name, handler in HANDLERS.items()}
