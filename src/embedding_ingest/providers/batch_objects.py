"""OpenAI batch objects (the SDK's `Batch` or the same JSON as a dict) mapped to our ProviderBatch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from embedding_ingest.providers.base import ProviderBatch, ProviderBatchStatus, RequestCounts


def describe_batch_error(error: Mapping[str, Any]) -> str:
    """`line 3: invalid_request: body.input must be ...` - what an operator needs to find the line."""
    parts = []
    if error.get("line") is not None:
        parts.append(f"line {error['line']}")
    parts.extend(str(error[key]) for key in ("code", "message") if error.get(key))
    return ": ".join(parts) or "unspecified batch error"


def to_provider_batch(batch: Mapping[str, Any]) -> ProviderBatch:
    errors = batch.get("errors") or {}
    counts = batch.get("request_counts") or {}
    data = errors.get("data") or []
    usage = batch.get("usage") or {}
    input_tokens = usage.get("input_tokens")
    return ProviderBatch(
        provider_batch_id=batch["id"],
        status=ProviderBatchStatus(batch["status"]),
        input_file_id=batch.get("input_file_id"),
        output_file_id=batch.get("output_file_id"),
        error_file_id=batch.get("error_file_id"),
        request_counts=RequestCounts(
            **{key: counts.get(key) or 0 for key in ("total", "completed", "failed")}
        ),
        errors=[describe_batch_error(error) for error in data],
        error_codes=[str(error["code"]) for error in data if error.get("code")],
        line_errors={error["line"]: describe_batch_error(error) for error in data
                     if isinstance(error.get("line"), int) and not isinstance(error.get("line"), bool)},
        errors_without_line=sum(1 for error in data if not isinstance(error.get("line"), int)),
        input_tokens=input_tokens if isinstance(input_tokens, int) and not isinstance(input_tokens, bool)
        else None,
        created_at=batch.get("created_at"),
        metadata={str(key): str(value) for key, value in (batch.get("metadata") or {}).items()},
    )
