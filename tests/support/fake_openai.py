"""A small OpenAI API for tests: the Batch API subset we use, over real HTTP on 127.0.0.1.

The real `openai` SDK talks to it unchanged (base_url + any key). Batches run on the local provider's
engine (providers/local_batches.py), so the fake and LocalBatchProvider compute identical files and walk
identical statuses, and the engine follows the spec: native widths per model and `dimensions` (refused
for ada-002), `encoding_format`, `usage`, partial output on cancel and expiry, time-based progress.
What the fake adds is OpenAI's HTTP surface: a new file id per upload, 401 `invalid_api_key` for a wrong
key, and every reply checked against OpenAI's published schemas (openai_schema_check.py): a reply that
breaks them is recorded, and the autouse fixture below fails the test that received it.

Test controls: `fail_next` (answer the next N matching requests with a status, error type/code and
headers), `set_account` (a sticky quota or key problem), `set_faults` (default fault plan of new
batches), per-batch `local_*` metadata keys, `vanish` (forget a batch), `expire_file` (delete a file),
`clock` (a FakeClock driving the clock walk: tests never sleep), `break_next_reply` (corrupt a reply on
purpose), and `calls` (every request seen, for asserting what a client did).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import openai
import pytest
from openai_schema_check import output_line_problems, problems

from embedding_ingest.providers.batch_files import embedding_value, split_lines
from embedding_ingest.providers.exceptions import (
    ProviderRequestError,
    UnknownProviderBatchError,
    UnknownProviderFileError,
)
from embedding_ingest.providers.faults import FaultPlan
from embedding_ingest.providers.local_batches import LocalBatchEngine
from embedding_ingest.providers.local_results import NO_DIMENSIONS_MESSAGE
from embedding_ingest.providers.models import native_dimensions, takes_dimensions
from embedding_ingest.providers.tokens import count_tokens

API_KEY = "sk-test-not-a-real-key"
# What OpenAI answers (help.openai.com/en/articles/6891831; mattvr/ShellGPT#23).
QUOTA_MESSAGE = ("You exceeded your current quota, please check your plan and billing details. For more "
                 "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.")


class ApiError(Exception):
    def __init__(self, status: int, message: str, error_type: str = "invalid_request_error",
                 headers: dict[str, str] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.error_type, self.code = status, message, error_type, code
        self.headers = headers or {}


@dataclass
class InjectedFailure:
    status: int
    remaining: int
    method: str | None  # None matches any
    path_prefix: str | None
    after_handling: bool  # do the work, then answer the error: a response lost on the way back
    headers: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # without the query string
    status: int
    body: bytes = b""  # the request body of a JSON request (not of file uploads)


class FakeClock:
    """A clock tests move by hand: `now()` for the engine, `advance(seconds)` to let time pass."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


_LIVE_FAKES: weakref.WeakSet[FakeOpenAI] = weakref.WeakSet()


class FakeOpenAI:
    def __init__(self, root: Path, *, dimensions: int = 1536, faults: FaultPlan | None = None,
                 clock: FakeClock | None = None) -> None:
        """`dimensions`: the width of models without a native one (the local encoder's)."""
        self.clock = clock
        self.engine = LocalBatchEngine(root, default_dimensions=dimensions, faults=faults,
                                       now=clock.now if clock is not None else time.time)
        self.calls: list[Call] = []
        self.schema_problems: list[str] = []
        self._failures: list[InjectedFailure] = []
        self._account: dict[str, bool] = {"quota_exhausted": False, "key_revoked": False}
        self._breakers: list[tuple[str, Callable[[Any], Any]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        _LIVE_FAKES.add(self)

    # -- test controls ----------------------------------------------------------------------------
    def fail_next(
        self,
        times: int,
        *,
        status: int = 500,
        method: str | None = None,
        path: str | None = None,
        after_handling: bool = False,
        retry_after: str | None = None,
        headers: dict[str, str] | None = None,
        error_type: str | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next `times` requests matching method and path prefix (e.g. "/v1/batches") with
        `status`, the error body's `type`/`code`/`message` and extra `headers` (`retry_after` is the
        Retry-After header); with `after_handling` the request takes effect first (the client just
        never hears)."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        with self._lock:
            self._failures.append(InjectedFailure(status, times, method, path, after_handling, extra,
                                                  error_type, code, message))

    def fail_with_quota(self, times: int = 1, **options: Any) -> None:
        """The next `times` requests get OpenAI's 429 `insufficient_quota` (billing, not a rate limit)."""
        self.fail_next(times, status=429, error_type="insufficient_quota", code="insufficient_quota",
                       message=QUOTA_MESSAGE, **options)

    def set_account(self, *, quota_exhausted: bool = False, key_revoked: bool = False) -> None:
        """A sticky account problem: every request gets 429 insufficient_quota or 401 invalid_api_key."""
        with self._lock:
            self._account = {"quota_exhausted": quota_exhausted, "key_revoked": key_revoked}

    def set_faults(self, **changes: Any) -> None:
        """Change the fault plan new batches start with (FaultPlan fields)."""
        self.engine.faults = self.engine.faults.model_copy(update=changes)

    def vanish(self, batch_id: str) -> None:
        """Forget a batch: from now on the API answers 404 for it."""
        self.engine.forget_batch(batch_id)

    def expire_file(self, file_id: str) -> None:
        """Delete a file, as OpenAI does with batch output 30 days after completion (404 from then on)."""
        self.engine.delete_file(file_id)

    def break_next_reply(self, path_prefix: str, mutate: Callable[[Any], Any]) -> None:
        """Pass the next JSON reply to a path starting with `path_prefix` through `mutate` before it is
        sent (and checked): the way to prove a reply off the spec fails a test."""
        with self._lock:
            self._breakers.append((path_prefix, mutate))

    def take_schema_problems(self) -> list[str]:
        """The replies that broke the spec so far (and forget them)."""
        with self._lock:
            found, self.schema_problems = self.schema_problems, []
        return found

    def calls_to(self, method: str, path: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method and call.path == path]

    def batches_created(self) -> list[dict[str, Any]]:
        return self.engine.list_batches()

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAI:
        handler = type("BoundHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def client(self, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(api_key=API_KEY, base_url=self.base_url, **options)

    # -- request handling (called from server threads) --------------------------------------------
    def _take_failure(self, method: str, path: str) -> InjectedFailure | None:
        with self._lock:
            for failure in self._failures:
                matches = (failure.method in (None, method)) and (
                    failure.path_prefix is None or path.startswith(failure.path_prefix)
                )
                if matches and failure.remaining > 0:
                    failure.remaining -= 1
                    return failure
        return None

    def _record(self, method: str, path: str, status: int, body: bytes = b"") -> None:
        with self._lock:
            self.calls.append(Call(method, path, status, body))

    def _check(self, where: str, found: list[str]) -> None:
        if found:
            with self._lock:
                self.schema_problems.extend(f"{where}: {problem}" for problem in found)

    def _broken(self, path: str, payload: Any) -> Any:
        with self._lock:
            for index, (prefix, mutate) in enumerate(self._breakers):
                if path.startswith(prefix):
                    del self._breakers[index]
                    return mutate(payload)
        return payload

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, Any, str | None]:
        """(status, payload, schema of the payload or None for file content)."""
        key = (headers.get("Authorization") or "").removeprefix("Bearer ")
        if key != API_KEY or self._account["key_revoked"]:
            shown = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "(none)"
            raise ApiError(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                           "https://platform.openai.com/account/api-keys.", code="invalid_api_key")
        if self._account["quota_exhausted"]:
            raise ApiError(429, QUOTA_MESSAGE, "insufficient_quota", code="insufficient_quota")
        injected = self._take_failure(method, path)
        if injected is not None and not injected.after_handling:
            raise _injected_error(injected)
        answer = self._route(method, path, query, headers, body)
        if injected is not None:
            raise _injected_error(injected)
        return answer

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, Any, str | None]:
        parts = path.strip("/").split("/")
        if parts[:1] != ["v1"]:
            raise ApiError(404, f"unknown path {path}")
        route = (method, *parts[1:])
        match route:
            case ("POST", "files"):
                return 200, self._upload(headers, body), "OpenAIFile"
            case ("GET", "files", file_id):
                return 200, self.engine.file_object(file_id), "OpenAIFile"
            case ("GET", "files", file_id, "content"):
                content = self.engine.file_content(file_id)
                if self.engine.file_object(file_id)["purpose"] == "batch_output":
                    for line_no, line in enumerate(split_lines(content), start=1):
                        self._check(f"GET {path} line {line_no}", output_line_problems(line))
                return 200, content, None
            case ("POST", "batches"):
                request = json.loads(body)
                batch, _ = self.engine.create_batch(
                    input_file_id=request.get("input_file_id", ""),
                    endpoint=request.get("endpoint", ""),
                    completion_window=request.get("completion_window", ""),
                    metadata=request.get("metadata"),
                    batch_id=f"batch_{uuid.uuid4().hex}",
                )
                return 200, batch, "Batch"
            case ("GET", "batches"):
                return 200, self._list_batches(query), "ListBatchesResponse"
            case ("GET", "batches", batch_id):
                return 200, self.engine.retrieve_batch(batch_id), "Batch"
            case ("POST", "batches", batch_id, "cancel"):
                return 200, self.engine.cancel_batch(batch_id), "Batch"
            case ("POST", "embeddings"):
                return 200, self._embeddings(json.loads(body)), "CreateEmbeddingResponse"
        raise ApiError(404, f"no route for {method} {path}")

    def _upload(self, headers: Any, body: bytes) -> dict[str, Any]:
        content_type = headers.get("Content-Type", "")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        if "file" not in fields or "purpose" not in fields:
            raise ApiError(400, "multipart upload needs 'file' and 'purpose' fields")
        filename, content = fields["file"]
        # A new file per upload, as OpenAI makes (no source says identical uploads are deduplicated).
        return self.engine.upload(content, filename=filename or "upload.jsonl",
                                  purpose=fields["purpose"][1].decode(), file_id=f"file-{uuid.uuid4().hex}")

    def _list_batches(self, query: dict[str, str]) -> dict[str, Any]:
        batches = self.engine.list_batches()
        if query.get("after"):
            ids = [batch["id"] for batch in batches]
            batches = batches[ids.index(query["after"]) + 1 :] if query["after"] in ids else []
        limit = int(query.get("limit", 20))
        page = batches[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(batches) > limit,
        }

    def _embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        texts = request.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            raise ApiError(400, "input must be a non-empty string or a list of non-empty strings")
        model = request.get("model")
        dimensions = request.get("dimensions")
        if dimensions is not None and not takes_dimensions(model):
            raise ApiError(400, NO_DIMENSIONS_MESSAGE)
        encoding_format = request.get("encoding_format", "float")
        if encoding_format not in ("float", "base64"):
            raise ApiError(400, f"encoding_format must be float or base64, got {encoding_format!r}",
                           code="invalid_value")
        vectors = self.engine.embed(texts, dimensions or native_dimensions(model))
        data = [{"object": "embedding", "index": index, "embedding": embedding_value(vector, encoding_format)}
                for index, vector in enumerate(vectors)]
        tokens = sum(count_tokens(text) for text in texts)
        return {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK expects
    disable_nagle_algorithm = True  # headers and body go out separately: no 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet test output

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        extra_headers: dict[str, str] = {}
        schema: str | None = "ErrorResponse"
        try:
            status, payload, schema = self.fake.handle(method, split.path, query, self.headers, body)
        except ApiError as exc:
            status, payload = exc.status, _error_body(exc.message, exc.error_type, exc.code)
            extra_headers = exc.headers
        except (UnknownProviderBatchError, UnknownProviderFileError) as exc:
            status, payload = 404, _error_body(str(exc), "invalid_request_error")
        except ProviderRequestError as exc:
            status, payload = 400, _error_body(str(exc), "invalid_request_error")
        except (json.JSONDecodeError, ValueError) as exc:
            status, payload = 400, _error_body(f"bad request body: {exc}", "invalid_request_error")
        json_body = body if self.headers.get("Content-Type", "").startswith("application/json") else b""
        self.fake._record(method, split.path, status, json_body)
        if schema is not None:
            payload = self.fake._broken(split.path, payload)
            self.fake._check(f"{method} {split.path} ({status})", problems(schema, payload))
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/octet-stream" if isinstance(payload, bytes) else "application/json"
        )
        self.send_header("Content-Length", str(len(raw)))
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._serve("POST")


_INJECTED_TYPES = {429: "rate_limit_error", 400: "invalid_request_error", 401: "invalid_request_error",
                   403: "permission_error", 404: "invalid_request_error", 408: "timeout", 409: "conflict"}


def _injected_error(failure: InjectedFailure) -> ApiError:
    status = failure.status
    return ApiError(status, failure.message or f"injected HTTP {status}",
                    failure.error_type or _INJECTED_TYPES.get(status, "server_error"), failure.headers,
                    failure.code)


def _error_body(message: str, error_type: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


@contextmanager
def running_fake_openai(root: Path, **options: Any) -> Iterator[FakeOpenAI]:
    """A started fake for the duration of the block."""
    fake = FakeOpenAI(root, **options).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(autouse=True)
def _fake_openai_replies_follow_the_spec() -> Iterator[None]:
    """Fails the test during which any fake sent a reply off OpenAI's published schemas."""
    yield
    found = [problem for fake in list(_LIVE_FAKES) for problem in fake.take_schema_problems()]
    if found:
        pytest.fail("the fake OpenAI sent replies off the spec:\n  " + "\n  ".join(found[:20]), pytrace=False)
