"""Validation of a batch input file the way the Batch API does it before running anything: one bad line
fails the whole batch, with an error per bad line naming its line number."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from embedding_ingest.providers.batch_files import EMBEDDINGS_URL, ENCODING_FORMATS, EncodingFormat

MAX_REPORTED_ERRORS = 100


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    line_no: int
    custom_id: str
    model: str
    text: str
    dimensions: int | None
    encoding_format: EncodingFormat = "float"  # OpenAI's default


@dataclass(frozen=True, slots=True)
class InputLineError:
    line: int | None
    message: str
    param: str | None = None
    code: str = "invalid_request"

    def as_openai(self) -> dict[str, Any]:
        return {"code": self.code, "line": self.line, "message": self.message, "param": self.param}


def _line_problem(obj: Any, endpoint: str) -> tuple[str, str | None] | None:
    """(message, param) for the first thing wrong with one parsed request line, or None."""
    if not isinstance(obj, dict):
        return "request line is not a JSON object", None
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "custom_id must be a non-empty string", "custom_id"
    if obj.get("method") != "POST":
        return f"method must be POST, got {obj.get('method')!r}", "method"
    if obj.get("url") != endpoint:
        return f"url {obj.get('url')!r} does not match the batch endpoint {endpoint}", "url"
    body = obj.get("body")
    if not isinstance(body, dict):
        return "body must be a JSON object", "body"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "body.model must be a non-empty string", "body.model"
    text = body.get("input")
    if not isinstance(text, str) or not text:
        return "body.input must be a non-empty string", "body.input"
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions <= 0
    ):
        return f"body.dimensions must be a positive integer, got {dimensions!r}", "body.dimensions"
    encoding_format = body.get("encoding_format", "float")
    if encoding_format not in ENCODING_FORMATS:
        return (f"body.encoding_format must be one of {', '.join(ENCODING_FORMATS)}, got {encoding_format!r}",
                "body.encoding_format")
    return None


def parse_request_file(
    data: bytes, endpoint: str = EMBEDDINGS_URL
) -> tuple[list[EmbeddingRequest], list[InputLineError]]:
    """All requests of an input file, or the errors that make the batch fail (at most 100 reported)."""
    requests: list[EmbeddingRequest] = []
    errors: list[InputLineError] = []
    seen: dict[str, int] = {}
    models: set[str] = set()
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            errors.append(InputLineError(line_no, f"line is not valid JSON: {exc}"))
            continue
        problem = _line_problem(obj, endpoint)
        if problem is not None:
            errors.append(InputLineError(line_no, problem[0], problem[1]))
            continue
        custom_id = obj["custom_id"]
        if custom_id in seen:
            errors.append(
                InputLineError(
                    line_no,
                    f"custom_id {custom_id!r} repeats line {seen[custom_id]}",
                    "custom_id",
                    "duplicate_custom_id",
                )
            )
            continue
        seen[custom_id] = line_no
        body = obj["body"]
        models.add(body["model"])
        requests.append(
            EmbeddingRequest(line_no, custom_id, body["model"], body["input"], body.get("dimensions"),
                             body.get("encoding_format", "float"))
        )
    if len(models) > 1:
        errors.append(
            InputLineError(
                None, f"a batch must use one model; found {sorted(models)}", "body.model", "mixed_models"
            )
        )
    if not requests and not errors:
        errors.append(InputLineError(None, "the input file has no requests", None, "empty_file"))
    return requests, errors[:MAX_REPORTED_ERRORS]
