"""The Batch API's JSONL files: request lines we write, output and error lines we read.

Shapes are exactly OpenAI's (openai-openapi `BatchRequestInput` / `BatchRequestOutput`). Reading streams
and is forgiving per line: a file arrives as chunks of bytes (whatever size), lines are split on b"\n"
only, and a bad line becomes a `LineProblem` naming its line number and custom_id and never stops the
lines after it. Embeddings come as base64 (little-endian float32, what OpenAI sends for
`encoding_format: "base64"`) or as a list of numbers, and are decoded straight to float32 rows.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
import pybase64

from embedding_ingest import fast_json
from embedding_ingest.providers.base import MAX_BYTES_PER_BATCH_FILE, MAX_REQUESTS_PER_BATCH
from embedding_ingest.providers.exceptions import BatchLimitError
from embedding_ingest.stores.records import EmbeddingItem

EMBEDDINGS_URL = "/v1/embeddings"
EncodingFormat = Literal["float", "base64"]
ENCODING_FORMATS: tuple[str, ...] = ("float", "base64")
# Base64 bytes are little-endian float32: OpenAI does not document the layout, but a real
# text-embedding-3-small reply decodes to plausible values as "<f4" and to garbage as ">f4"
# (huggingface/text-embeddings-inference#288), and the SDK decodes with float32 (lib/_parsing/_embeddings.py).
BASE64_DTYPE = np.dtype("<f4")
# HTTP statuses of a request that ran and was refused for something other than its content: the SDK
# retries 408 (timeout), 409 (lock timeout) and 429 (rate limit), and 5xx is the server's (openai-python
# _base_client._should_retry).
_NOT_CONTENT_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True, eq=False)
class OutputRecord:
    line_no: int  # 1-based line number in the output file
    custom_id: str
    embedding: np.ndarray  # float32, shape (dimensions,)
    tokens: int = 0  # the response's usage.total_tokens (what the provider bills for this request)

    def __eq__(self, other: object) -> bool:
        same = (self.line_no, self.custom_id, self.tokens) == (other.line_no, other.custom_id, other.tokens) \
            if isinstance(other, OutputRecord) else False
        return same and np.array_equal(self.embedding, other.embedding)

    __hash__ = None  # type: ignore[assignment]  # equality by value over an array: not hashable


@dataclass(frozen=True, slots=True)
class LineProblem:
    line_no: int
    custom_id: str | None  # None when the line is too broken to tell
    reason: str
    content: bool = False  # True: the provider ran the request and refused it for its content (4xx)


@dataclass(frozen=True, slots=True)
class RequestFailure:
    """One error-file line: why a request has no embedding, and whether its content is to blame."""

    reason: str
    content: bool  # True only for a response with a 4xx other than 408/409/429 (see is_content_status)


def is_content_status(status: object) -> bool:
    """An HTTP status that means "this request's content was refused": 4xx but 408, 409 and 429."""
    return isinstance(status, int) and 400 <= status < 500 and status not in _NOT_CONTENT_STATUSES


def encode_request(item: EmbeddingItem, model: str, dimensions: int | None,
                   encoding_format: EncodingFormat | None = "base64") -> bytes:
    """One request line (with its newline) asking for the embedding of `item.embed_text`, `dimensions`
    wide (None: the model's native width, for models that refuse the parameter) and in `encoding_format`
    (base64 output lines are about a quarter of the float ones and parse without Python floats)."""
    body: dict[str, Any] = {"model": model, "input": item.embed_text}
    if dimensions is not None:
        body["dimensions"] = dimensions
    if encoding_format is not None:
        body["encoding_format"] = encoding_format
    line = {"custom_id": item.item_id, "method": "POST", "url": EMBEDDINGS_URL, "body": body}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def check_batch_limits(requests_jsonl: bytes) -> int:
    """The number of request lines; raises BatchLimitError past the Batch API's per-file limits."""
    if len(requests_jsonl) > MAX_BYTES_PER_BATCH_FILE:
        raise BatchLimitError(
            f"batch input is {len(requests_jsonl):,} bytes; "
            f"the Batch API takes at most {MAX_BYTES_PER_BATCH_FILE:,}"
        )
    count = sum(1 for line in requests_jsonl.split(b"\n") if line.strip())
    if count > MAX_REQUESTS_PER_BATCH:
        raise BatchLimitError(
            f"batch input has {count:,} requests; the Batch API takes at most {MAX_REQUESTS_PER_BATCH:,}"
        )
    if count == 0:
        raise BatchLimitError("batch input has no requests")
    return count


Chunks = Iterable[bytes]  # a file's bytes in pieces of any size (one piece: the whole file)


def split_lines(chunks: Chunks | bytes) -> Iterator[bytes]:
    """The lines of a byte stream, split on b"\\n" only: not on what str.splitlines (and httpx's
    iter_lines) also split on (\\r, \\x1c-\\x1e, U+0085, U+2028...), which may sit raw inside a JSON
    string and would cut its line in two. Memory: one chunk plus one line."""
    if isinstance(chunks, bytes | bytearray | memoryview):
        chunks = [bytes(chunks)]
    rest = b""
    for chunk in chunks:
        if not chunk:
            continue
        *lines, rest = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
        yield from lines
    if rest:
        yield rest


def _numbered_lines(chunks: Chunks | bytes) -> Iterator[tuple[int, bytes]]:
    for line_no, raw in enumerate(split_lines(chunks), start=1):
        if raw.strip():
            yield line_no, raw


def _custom_id_of(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("custom_id"), str) and obj["custom_id"]:
        return obj["custom_id"]
    return None


_NUMBER_TYPES = frozenset({int, float})  # what json.loads makes of numbers (bool is excluded)


def _b64decode(text: str) -> bytes:
    """Strict base64 (alphabet and padding checked), as `base64.b64decode(validate=True)` decodes it:
    pybase64 (SIMD; ~1 us for a 1536-d embedding instead of ~19 us) for every well-formed value, the
    standard library for the rest, so what is accepted or refused does not depend on the library
    (pybase64 is stricter about stray padding after the last quantum). Raises binascii.Error."""
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return base64.b64decode(text, validate=True)


def decode_embedding(embedding: Any, dimensions: int) -> np.ndarray | str:
    """A float32 row of `dimensions` from a base64 string or a list of numbers, or why not (a str)."""
    if isinstance(embedding, str):
        try:
            raw = _b64decode(embedding)
        except (binascii.Error, ValueError):
            return "embedding is not valid base64"
        if len(raw) != dimensions * BASE64_DTYPE.itemsize:
            return (f"embedding has {len(raw) / BASE64_DTYPE.itemsize:g} dimensions, expected {dimensions}"
                    " (base64 float32)")
        vector = np.frombuffer(raw, dtype=BASE64_DTYPE).astype(np.float32)
    else:
        # Whole-list checks in C (type set, numpy): per-value Python checks dominated polling (bench/).
        if not isinstance(embedding, list) or not _NUMBER_TYPES.issuperset(map(type, embedding)):
            return "embedding is not a list of numbers"
        if len(embedding) != dimensions:
            return f"embedding has {len(embedding)} dimensions, expected {dimensions}"
        values = np.asarray(embedding, dtype=np.float64)
        if not np.isfinite(values).all():
            return "embedding has non-finite values (NaN or infinity)"
        vector = values.astype(np.float32)
    if not np.isfinite(vector).all():
        return "embedding has non-finite values (NaN or infinity)"
    return vector


def _parse_output_line(line_no: int, raw: bytes, dimensions: int) -> OutputRecord | LineProblem:
    try:
        obj = fast_json.loads(raw)  # orjson parses 1536 floats ~8x faster
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return LineProblem(line_no, None, f"malformed JSON: {exc}")
    custom_id = _custom_id_of(obj)
    if custom_id is None:
        return LineProblem(line_no, None, "missing custom_id")
    response = obj.get("response")
    if not isinstance(response, dict):
        error = obj.get("error")
        return LineProblem(line_no, custom_id, f"no response (error: {_describe_error(error)})")
    status = response.get("status_code")
    if status != 200:
        reason = f"status_code {status}: {_describe_error(_body_error(response))}"
        return LineProblem(line_no, custom_id, reason, content=is_content_status(status))
    body = response.get("body")
    data = body.get("data") if isinstance(body, dict) else None
    if (
        not isinstance(data, list)
        or len(data) != 1
        or not isinstance(data[0], dict)
        or "embedding" not in data[0]
    ):
        return LineProblem(line_no, custom_id, "response body lacks exactly one data[].embedding")
    vector = decode_embedding(data[0]["embedding"], dimensions)
    if isinstance(vector, str):
        return LineProblem(line_no, custom_id, vector)
    return OutputRecord(line_no, custom_id, vector, _usage_tokens(body))


def _usage_tokens(body: dict[str, Any]) -> int:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return 0
    value = usage.get("total_tokens", usage.get("prompt_tokens"))
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def iter_output_records(chunks: Chunks | bytes, *, dimensions: int) -> Iterator[OutputRecord | LineProblem]:
    """Every non-blank line of an output file (its bytes, whole or in chunks), as a record or as the
    problem that line has. Lazy: one line is parsed at a time."""
    for line_no, raw in _numbered_lines(chunks):
        yield _parse_output_line(line_no, raw, dimensions)


def _body_error(response: dict[str, Any]) -> Any:
    body = response.get("body")
    return body.get("error", body) if isinstance(body, dict) else body


def _describe_error(error: Any) -> str:
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        message = error.get("message")
        parts = [str(part) for part in (code, message) if part]
        return ": ".join(parts) if parts else json.dumps(error)[:200]
    if error is None:
        return "none given"
    return str(error)[:200]


def parse_error_file(chunks: Chunks | bytes) -> dict[str, RequestFailure]:
    """custom_id -> why, for every request the error file reports. Lines without a custom_id are
    reported under the key "line N" so nothing is silently dropped. Only a request the provider ran and
    answered with a content 4xx is `content`; one that never ran (`response: null`: the batch expired
    or was cancelled first) or failed on the provider's side is not."""
    failures: dict[str, RequestFailure] = {}
    for line_no, raw in _numbered_lines(chunks):
        try:
            obj = fast_json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            failures[f"line {line_no}"] = RequestFailure(f"malformed JSON: {exc}", content=False)
            continue
        custom_id = _custom_id_of(obj)
        response = obj.get("response") if isinstance(obj, dict) else None
        error = obj.get("error") if isinstance(obj, dict) else None
        content = False
        if error is not None:
            reason = _describe_error(error)
        elif isinstance(response, dict):
            status = response.get("status_code")
            reason = f"status_code {status}: {_describe_error(_body_error(response))}"
            content = is_content_status(status)
        else:
            reason = "reported without an error"
        failures[custom_id if custom_id is not None else f"line {line_no}"] = RequestFailure(reason, content)
    return failures


# -- writing output and error lines (the local provider and the test server produce these) ----------
def _dump_line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


def embedding_value(vector: np.ndarray, encoding_format: EncodingFormat) -> str | list[float]:
    """An embedding as OpenAI writes it: base64 of little-endian float32, or a list of numbers."""
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype=BASE64_DTYPE).tobytes()).decode("ascii")
    return np.asarray(vector, dtype=np.float64).tolist()


def output_line(request_id: str, custom_id: str, model: str, embedding: np.ndarray | list[float], tokens: int,
                encoding_format: EncodingFormat = "float") -> bytes:
    """A request that succeeded, as a line of the output file."""
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0,
                  "embedding": embedding_value(np.asarray(embedding), encoding_format)}],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    response = {"status_code": 200, "request_id": request_id, "body": body}
    return _dump_line(
        {"id": f"batch_req_{request_id}", "custom_id": custom_id, "response": response, "error": None}
    )


def failed_request_line(request_id: str, custom_id: str, status_code: int, message: str) -> bytes:
    """A request the API answered with an error status (it lands in the error file)."""
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    response = {"status_code": status_code, "request_id": request_id, "body": {"error": error}}
    return _dump_line(
        {"id": f"batch_req_{request_id}", "custom_id": custom_id, "response": response, "error": None}
    )


def unexecuted_request_line(request_id: str, custom_id: str, code: str, message: str) -> bytes:
    """A request never executed (batch expired or cancelled first)."""
    error = {"code": code, "message": message}
    return _dump_line(
        {"id": f"batch_req_{request_id}", "custom_id": custom_id, "response": None, "error": error}
    )
