"""The Batch API's JSONL files: request lines we write, output and error lines we read.

Shapes are exactly OpenAI's (tooling notes). Reading is streaming and forgiving per line: a bad line
becomes a `LineProblem` naming its line number and custom_id and never stops the lines after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from embedding_ingest.providers.base import MAX_BYTES_PER_BATCH_FILE, MAX_REQUESTS_PER_BATCH
from embedding_ingest.providers.exceptions import BatchLimitError
from embedding_ingest.stores.records import EmbeddingItem

EMBEDDINGS_URL = "/v1/embeddings"


@dataclass(frozen=True, slots=True)
class OutputRecord:
    line_no: int  # 1-based line number in the output file
    custom_id: str
    embedding: list[float]
    tokens: int = 0  # the response's usage.total_tokens (what the provider bills for this request)


@dataclass(frozen=True, slots=True)
class LineProblem:
    line_no: int
    custom_id: str | None  # None when the line is too broken to tell
    reason: str


def encode_request(item: EmbeddingItem, model: str, dimensions: int | None) -> bytes:
    """One request line (with its newline) asking for the embedding of `item.embed_text`."""
    body: dict[str, Any] = {"model": model, "input": item.embed_text}
    if dimensions is not None:
        body["dimensions"] = dimensions
    line = {"custom_id": item.item_id, "method": "POST", "url": EMBEDDINGS_URL, "body": body}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def check_batch_limits(requests_jsonl: bytes) -> int:
    """The number of request lines; raises BatchLimitError past the Batch API's per-file limits."""
    if len(requests_jsonl) > MAX_BYTES_PER_BATCH_FILE:
        raise BatchLimitError(
            f"batch input is {len(requests_jsonl):,} bytes; "
            f"the Batch API takes at most {MAX_BYTES_PER_BATCH_FILE:,}"
        )
    count = sum(1 for line in requests_jsonl.splitlines() if line.strip())
    if count > MAX_REQUESTS_PER_BATCH:
        raise BatchLimitError(
            f"batch input has {count:,} requests; the Batch API takes at most {MAX_REQUESTS_PER_BATCH:,}"
        )
    if count == 0:
        raise BatchLimitError("batch input has no requests")
    return count


def _numbered_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    for line_no, raw in enumerate(data.splitlines(), start=1):
        if raw.strip():
            yield line_no, raw


def _custom_id_of(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("custom_id"), str) and obj["custom_id"]:
        return obj["custom_id"]
    return None


_NUMBER_TYPES = frozenset({int, float})  # what json.loads makes of numbers (bool is excluded)


def _embedding_problem(embedding: Any, dimensions: int) -> str | None:
    # Whole-list checks in C (type set, numpy): per-value Python checks dominated polling (bench/).
    if not isinstance(embedding, list) or not _NUMBER_TYPES.issuperset(map(type, embedding)):
        return "embedding is not a list of numbers"
    if len(embedding) != dimensions:
        return f"embedding has {len(embedding)} dimensions, expected {dimensions}"
    if not np.isfinite(np.asarray(embedding, dtype=np.float64)).all():
        return "embedding has non-finite values (NaN or infinity)"
    return None


def _loads(raw: bytes) -> Any:
    """orjson parses an output line of 1536 floats ~8x faster than json; lines it refuses (NaN
    literals, which json accepts, or real syntax errors) go through json for the exact diagnosis."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _parse_output_line(line_no: int, raw: bytes, dimensions: int) -> OutputRecord | LineProblem:
    try:
        obj = _loads(raw)
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
        return LineProblem(
            line_no, custom_id, f"status_code {status}: {_describe_error(_body_error(response))}"
        )
    body = response.get("body")
    data = body.get("data") if isinstance(body, dict) else None
    if (
        not isinstance(data, list)
        or len(data) != 1
        or not isinstance(data[0], dict)
        or "embedding" not in data[0]
    ):
        return LineProblem(line_no, custom_id, "response body lacks exactly one data[].embedding")
    embedding = data[0]["embedding"]
    problem = _embedding_problem(embedding, dimensions)
    if problem is not None:
        return LineProblem(line_no, custom_id, problem)
    return OutputRecord(line_no, custom_id, list(map(float, embedding)), _usage_tokens(body))


def _usage_tokens(body: dict[str, Any]) -> int:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return 0
    value = usage.get("total_tokens", usage.get("prompt_tokens"))
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def iter_output_records(data: bytes, *, dimensions: int) -> Iterator[OutputRecord | LineProblem]:
    """Every non-blank line of an output file, as a record or as the problem that line has."""
    for line_no, raw in _numbered_lines(data):
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


def parse_error_file(data: bytes) -> dict[str, str]:
    """custom_id -> reason for every request the error file reports. Lines without a custom_id are
    reported under the key "line N" so nothing is silently dropped."""
    reasons: dict[str, str] = {}
    for line_no, raw in _numbered_lines(data):
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            reasons[f"line {line_no}"] = f"malformed JSON: {exc}"
            continue
        custom_id = _custom_id_of(obj)
        response = obj.get("response") if isinstance(obj, dict) else None
        error = obj.get("error") if isinstance(obj, dict) else None
        if error is not None:
            reason = _describe_error(error)
        elif isinstance(response, dict):
            reason = f"status_code {response.get('status_code')}: {_describe_error(_body_error(response))}"
        else:
            reason = "reported without an error"
        reasons[custom_id if custom_id is not None else f"line {line_no}"] = reason
    return reasons


# -- writing output and error lines (the local provider and the test server produce these) ----------
def _dump_line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"


def output_line(request_id: str, custom_id: str, model: str, embedding: list[float], tokens: int) -> bytes:
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
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
