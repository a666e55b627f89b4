"""A small OpenAI API for tests: the Batch API subset we use, over real HTTP on 127.0.0.1.

The real `openai` SDK talks to it unchanged (base_url + any key). Batches run on the local provider's
engine, so the fake and LocalBatchProvider compute identical files and walk identical statuses.
Test controls: `fail_next` (answer the next N matching requests with 429/500/...), `set_faults`
(default fault plan for new batches: outcome failed/expired, failing custom_ids, polls per stage),
per-batch `local_*` metadata keys, and `calls` (every request seen, for asserting what a client did).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import openai

from embedding_ingest.providers.exceptions import (
    ProviderRequestError,
    UnknownProviderBatchError,
    UnknownProviderFileError,
)
from embedding_ingest.providers.faults import FaultPlan
from embedding_ingest.providers.local_batches import LocalBatchEngine
from embedding_ingest.providers.tokens import count_tokens

API_KEY = "sk-test-not-a-real-key"


class ApiError(Exception):
    def __init__(self, status: int, message: str, error_type: str = "invalid_request_error",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type
        self.headers = headers or {}


@dataclass
class InjectedFailure:
    status: int
    remaining: int
    method: str | None  # None matches any
    path_prefix: str | None
    after_handling: bool  # do the work, then answer the error: a response lost on the way back
    retry_after: str | None = None  # the Retry-After header sent with the error


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # without the query string
    status: int


class FakeOpenAI:
    def __init__(self, root: Path, *, dimensions: int = 1536, faults: FaultPlan | None = None) -> None:
        self.engine = LocalBatchEngine(root, default_dimensions=dimensions, faults=faults)
        self.calls: list[Call] = []
        self._failures: list[InjectedFailure] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

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
    ) -> None:
        """Answer the next `times` requests matching method and path prefix (e.g. "/v1/batches") with
        `status` (and a Retry-After header if given); with `after_handling` the request takes effect
        first (the client just never hears)."""
        with self._lock:
            self._failures.append(InjectedFailure(status, times, method, path, after_handling, retry_after))

    def set_faults(self, **changes: Any) -> None:
        """Change the fault plan new batches start with (FaultPlan fields)."""
        self.engine.faults = self.engine.faults.model_copy(update=changes)

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

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.calls.append(Call(method, path, status))

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, Any]:
        if headers.get("Authorization") != f"Bearer {API_KEY}":
            raise ApiError(401, "Incorrect API key provided.", "authentication_error")
        injected = self._take_failure(method, path)
        if injected is not None and not injected.after_handling:
            raise _injected_error(injected)
        answer = self._route(method, path, query, headers, body)
        if injected is not None:
            raise _injected_error(injected)
        return answer

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts[:1] != ["v1"]:
            raise ApiError(404, f"unknown path {path}")
        route = (method, *parts[1:])
        match route:
            case ("POST", "files"):
                return 200, self._upload(headers, body)
            case ("GET", "files", file_id):
                return 200, self.engine.file_object(file_id)
            case ("GET", "files", file_id, "content"):
                return 200, self.engine.file_content(file_id)
            case ("POST", "batches"):
                request = json.loads(body)
                batch, _ = self.engine.create_batch(
                    input_file_id=request.get("input_file_id", ""),
                    endpoint=request.get("endpoint", ""),
                    completion_window=request.get("completion_window", ""),
                    metadata=request.get("metadata"),
                    batch_id=f"batch_{uuid.uuid4().hex}",
                )
                return 200, batch
            case ("GET", "batches"):
                return 200, self._list_batches(query)
            case ("GET", "batches", batch_id):
                return 200, self.engine.retrieve_batch(batch_id)
            case ("POST", "batches", batch_id, "cancel"):
                return 200, self.engine.cancel_batch(batch_id)
            case ("POST", "embeddings"):
                return 200, self._embeddings(json.loads(body))
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
        return self.engine.upload(
            content, filename=filename or "upload.jsonl", purpose=fields["purpose"][1].decode()
        )

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
        vectors = self.engine.embed(texts, request.get("dimensions"))
        base64_format = request.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": index,
                "embedding": base64.b64encode(vector.astype("<f4").tobytes()).decode()
                if base64_format
                else vector.astype(np.float64).tolist(),
            }
            for index, vector in enumerate(vectors)
        ]
        tokens = sum(count_tokens(text) for text in texts)
        return {
            "object": "list",
            "data": data,
            "model": request.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


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
        try:
            status, payload = self.fake.handle(method, split.path, query, self.headers, body)
        except ApiError as exc:
            status, payload = exc.status, _error_body(exc.message, exc.error_type)
            extra_headers = exc.headers
        except (UnknownProviderBatchError, UnknownProviderFileError) as exc:
            status, payload = 404, _error_body(str(exc), "invalid_request_error")
        except ProviderRequestError as exc:
            status, payload = 400, _error_body(str(exc), "invalid_request_error")
        except (json.JSONDecodeError, ValueError) as exc:
            status, payload = 400, _error_body(f"bad request body: {exc}", "invalid_request_error")
        self.fake._record(method, split.path, status)
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


_INJECTED_TYPES = {429: "rate_limit_error", 400: "invalid_request_error", 401: "authentication_error",
                   403: "permission_error", 404: "invalid_request_error"}


def _injected_error(failure: InjectedFailure) -> ApiError:
    status = failure.status
    headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
    return ApiError(status, f"injected HTTP {status}", _INJECTED_TYPES.get(status, "server_error"), headers)


def _error_body(message: str, error_type: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


@contextmanager
def running_fake_openai(root: Path, **options: Any) -> Iterator[FakeOpenAI]:
    """A started fake for the duration of the block."""
    fake = FakeOpenAI(root, **options).start()
    try:
        yield fake
    finally:
        fake.stop()
