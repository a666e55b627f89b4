"""How the engine calls a Task's function: in this process, or CPU-heavy functions in a process pool.

The contract is `invoke(resource, payload) -> dict`; the function name is the resource ARN's last segment.
A failure is an exception whose class name is the ASL error name.
"""

from __future__ import annotations

import contextvars
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from asl_local.errors import (
    FunctionNotFoundError,
    RemoteTaskError,
    TaskProcessCrashedError,
    error_name_of,
    stack_trace_of,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Invocation:
    """What Lambda's context object tells a function about the call it serves: `request_id`
    (context.aws_request_id), `function_name`, `invoked_function_arn`, and the execution that made
    the call. The engine sets it around each invocation (current_invocation() reads it, in the calling
    thread and, through ProcessPoolInvoker, in a worker process), so a function's log lines can carry
    the request id the history records."""

    request_id: str
    function_name: str
    invoked_function_arn: str
    execution_arn: str


_invocation: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar("invocation", default=None)


def current_invocation() -> Invocation | None:
    """The invocation the calling code runs in (None outside any Task call)."""
    return _invocation.get()


def call_as(invocation: Invocation | None, function: Callable[[], T]) -> T:
    """`function()` with current_invocation() returning `invocation` while it runs."""
    token = _invocation.set(invocation)
    try:
        return function()
    finally:
        _invocation.reset(token)


def function_name_of(resource: str) -> str:
    """arn:aws:lambda:us-east-1:000000000000:function:resize-image -> resize-image;
    a qualified ARN (a version or alias after the name, ...:function:my-fn:prod) -> my-fn. Any other
    resource: its last `:` part. ARN shape: https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html"""
    parts = resource.split(":")
    return parts[6] if is_lambda_function_arn(resource) else parts[-1]


def is_lambda_function_arn(resource: str) -> bool:
    """arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER] (the other partitions too)."""
    parts = resource.split(":")
    return len(parts) in (7, 8) and parts[0] == "arn" and parts[2] == "lambda" and parts[5] == "function" \
        and bool(parts[6])


class Invoker(Protocol):
    """Calls the function a Task's `Resource` names with the Task's effective input; returns its result
    or raises (the exception's class name is the error Retry/Catch see)."""

    def invoke(self, resource: str, payload: dict[str, Any]) -> Any: ...


class InProcessInvoker:
    """Calls `handlers[function_name](payload)` in the calling thread."""

    def __init__(self, handlers: Mapping[str, Callable[[dict[str, Any]], Any]]) -> None:
        self._handlers = dict(handlers)

    def invoke(self, resource: str, payload: dict[str, Any]) -> Any:
        name = function_name_of(resource)
        handler = self._handlers.get(name)
        if handler is None:
            raise FunctionNotFoundError(name, sorted(self._handlers))
        return handler(payload)


def ignore_interrupts() -> None:
    """Worker initializer: Ctrl-C reaches the whole process group, but stopping is the parent's call
    (it lets running tasks finish); a worker killed mid-task would fail the execution instead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_in_worker(target: Callable[..., Any], function_name: str, payload: dict[str, Any],
                  target_args: tuple[Any, ...], invocation: Invocation | None = None) -> tuple[str, Any]:
    """Process-pool entry point. Failures come back as plain data (error name, message, traceback
    lines) so that no exception class has to survive pickling. `invocation` is the caller's
    current_invocation(), set again here for the function to read."""
    try:
        return "ok", call_as(invocation, lambda: target(function_name, payload, *target_args))
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the engine as data
        return "error", (error_name_of(exc), str(exc), stack_trace_of(exc))


class ProcessPoolInvoker:
    """Runs `target(function_name, payload, *target_args)`: the functions named in `process_functions`
    in a pool of worker processes (real parallelism for CPU-bound work), every other function in the
    calling thread. The caller names them: the engine knows nothing of what a function costs.

    `target` must be a picklable module-level function (a dispatcher that finds the function by name),
    and `target_args` picklable values it needs in the worker (settings as a JSON text, say).
    Workers are started with "spawn" by default: forking a process whose Map threads hold locks is unsafe.
    """

    def __init__(self, target: Callable[..., Any], *, process_functions: Collection[str],
                 target_args: tuple[Any, ...] = (), max_workers: int | None = None,
                 start_method: str = "spawn") -> None:
        self._target = target
        self._target_args = tuple(target_args)
        self.process_functions = frozenset(process_functions)
        self._max_workers = max_workers
        self._start_method = start_method
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self._max_workers,
                    mp_context=multiprocessing.get_context(self._start_method),
                    initializer=ignore_interrupts)
            return self._pool

    def prestart(self) -> None:
        """Start every worker now, with SIGINT ignored while they are born (call from the main thread;
        elsewhere a no-op). A spawned worker is a fresh interpreter that takes a while to import its
        way to the pool's initializer; Ctrl-C reaches it as well as the parent, and in that while it
        would die printing a KeyboardInterrupt traceback. An ignored SIGINT is inherited through the
        exec and Python keeps it ignored, so workers started here never see one. Workers otherwise
        start lazily, one per task submitted while none is idle, from whichever thread submits
        (Map iterations), where no handler can be changed."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            pool = self._executor()
            count = self._max_workers or os.cpu_count() or 1
            for _ in range(count):  # none is idle yet, so each submit spawns one worker, synchronously
                pool.submit(os.getpid)
        finally:
            signal.signal(signal.SIGINT, previous)

    def invoke(self, resource: str, payload: dict[str, Any]) -> Any:
        name = function_name_of(resource)
        if name not in self.process_functions:
            return self._target(name, payload, *self._target_args)
        pool = self._executor()
        try:
            status, value = pool.submit(run_in_worker, self._target, name, payload,
                                        self._target_args, current_invocation()).result()
        except BrokenProcessPool as exc:
            with self._lock:  # the next call gets a fresh pool
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise TaskProcessCrashedError(f"the worker process running {name!r} died: {exc}") from exc
        if status == "error":
            raise RemoteTaskError(*value)
        return value

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def __enter__(self) -> ProcessPoolInvoker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
