"""A small Lambda Runtime API (version 2018-06-01) and a "container" running the real runtime interface
client (`python -m awslambdaric <handler>`, the image's ENTRYPOINT) against it.

The runtime client long-polls GET /runtime/invocation/next, calls the handler, and POSTs the result to
/runtime/invocation/{id}/response or the failure ({"errorType", "errorMessage", "stackTrace"}, plus the
Lambda-Runtime-Function-Error-Type header) to /runtime/invocation/{id}/error; a handler that cannot be
imported is reported to /runtime/init/error. This server hands out queued events and collects those
answers, which is what the Lambda service does in front of a container.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PREFIX = "/2018-06-01/runtime"


@dataclass
class Answer:
    """What the runtime client posted for one invocation."""

    ok: bool
    body: Any  # the handler's result, or {"errorType", "errorMessage", ...}
    error_type_header: str | None = None

    @property
    def error_type(self) -> str | None:
        return None if self.ok else self.body.get("errorType")


@dataclass
class _Invocation:
    request_id: str
    event: Any
    answered: threading.Event = field(default_factory=threading.Event)
    answer: Answer | None = None


class RuntimeApi:
    """The Runtime API of one function. `invoke(event)` queues an invocation and waits for its answer."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self._pending: queue.Queue[_Invocation] = queue.Queue()
        self._by_id: dict[str, _Invocation] = {}
        self.init_error: dict[str, Any] | None = None
        self.answered = 0  # invocations answered (response or error)
        self.init_failed = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._closing = threading.Event()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> RuntimeApi:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: Any, *, timeout: float = 120) -> Answer:
        invocation = _Invocation(request_id=str(uuid.uuid4()), event=event)
        self._by_id[invocation.request_id] = invocation
        self._pending.put(invocation)
        deadline = time.monotonic() + timeout
        while not invocation.answered.wait(0.1):
            if self.init_failed.is_set():
                raise RuntimeError(f"{self.function_name} failed to start: {self.init_error}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.function_name} did not answer within {timeout} s")
        assert invocation.answer is not None
        return invocation.answer

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:  # quiet: one line per long poll otherwise
                pass

            def _reply(self, status: int, body: bytes = b"",
                       headers: Mapping[str, str] | None = None) -> None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client is gone
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404)
                while True:
                    try:
                        invocation = api._pending.get(timeout=0.2)
                        break
                    except queue.Empty:
                        if api._closing.is_set():
                            return self._reply(500, b'{"errorType":"ShuttingDown"}')
                deadline_ms = int((time.time() + 900) * 1000)
                self._reply(200, json.dumps(invocation.event).encode(), {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        f"arn:aws:lambda:us-east-1:123456789012:function:{api.function_name}",
                    "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
                })

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                if self.path == f"{PREFIX}/init/error":
                    api.init_error = body
                    api.init_failed.set()
                    return self._reply(202, b"{}")
                parts = self.path[len(PREFIX):].strip("/").split("/")  # invocation/{id}/response|error
                invocation = api._by_id.get(parts[1]) if len(parts) == 3 else None
                if invocation is None or parts[2] not in ("response", "error"):
                    return self._reply(404)
                error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                invocation.answer = Answer(ok=parts[2] == "response", body=body,
                                           error_type_header=error_type)
                api.answered += 1
                invocation.answered.set()
                self._reply(202, b"{}")

        return Handler


@contextlib.contextmanager
def lambda_container(function_name: str, handler: str, env: Mapping[str, str], *, log_dir: Path
                     ) -> Iterator[RuntimeApi]:
    """`python -m awslambdaric <handler>` in a subprocess with `env` (plus the Lambda variables), talking
    to its own RuntimeApi; yields the API. Its stdout/stderr (the function's logs) go to log_dir."""
    api = RuntimeApi(function_name).start()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{function_name}.log"
    process_env = {**os.environ, **env, "AWS_LAMBDA_RUNTIME_API": api.address,
                   "AWS_LAMBDA_FUNCTION_NAME": function_name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                   "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "awslambdaric", handler], env=process_env,
                                   stdout=log, stderr=subprocess.STDOUT)
        api.process = process  # type: ignore[attr-defined]
        api.log_path = log_path  # type: ignore[attr-defined]
        try:
            yield api
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            api.close()
