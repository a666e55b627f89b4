"""Runs a validated batch's requests on the local encoder and renders OpenAI's output and error files."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embedding_ingest.providers.batch_files import failed_request_line, output_line, unexecuted_request_line
from embedding_ingest.providers.faults import FaultPlan
from embedding_ingest.providers.models import native_dimensions, takes_dimensions
from embedding_ingest.providers.request_validation import EmbeddingRequest
from embedding_ingest.providers.tokens import count_tokens

Embedder = Callable[[Sequence[str], int | None], np.ndarray]

_UNEXECUTED_MESSAGES = {
    "batch_expired": "This request could not be executed before the completion window expired.",
}
# What OpenAI answers a `dimensions` for a model that takes none (ada-002; SciPhi-AI/R2R#768).
NO_DIMENSIONS_MESSAGE = "This model does not support specifying dimensions."


@dataclass(frozen=True)
class BatchResults:
    output: bytes  # empty when no request succeeded (the batch then has no output file)
    errors: bytes  # empty when nothing failed
    completed: int
    failed: int
    input_tokens: int = 0  # summed over the requests that ran (the batch's usage)


def _request_id(batch_id: str, custom_id: str) -> str:
    return hashlib.blake2b(f"{batch_id}\x1f{custom_id}".encode(), digest_size=12).hexdigest()


def run_requests(
    batch_id: str,
    requests: Sequence[EmbeddingRequest],
    faults: FaultPlan,
    embed: Embedder,
    *,
    executed: int,
    unexecuted_code: str | None,
) -> BatchResults:
    """The first `executed` requests run; the rest go to the error file under `unexecuted_code`, or
    nowhere when it is None (a cancelled batch's requests that never ran appear in no file)."""
    error_lines: list[bytes] = []
    to_embed: dict[int | None, list[EmbeddingRequest]] = defaultdict(list)
    input_tokens = 0
    for position, request in enumerate(requests[:executed], start=1):
        message = None
        if faults.request_fails(position, request.custom_id):
            message = f"request {request.custom_id!r} failed by fault injection"
        elif request.dimensions is not None and not takes_dimensions(request.model):
            message = NO_DIMENSIONS_MESSAGE
        if message is not None:
            error_lines.append(
                failed_request_line(_request_id(batch_id, request.custom_id), request.custom_id, 400, message)
            )
        else:
            # No `dimensions`: the model's native width (None: the engine's default, for local models).
            to_embed[request.dimensions or native_dimensions(request.model)].append(request)
    if unexecuted_code is not None:
        message = _UNEXECUTED_MESSAGES.get(
            unexecuted_code, f"This request was not executed ({unexecuted_code})."
        )
        error_lines.extend(
            unexecuted_request_line(
                _request_id(batch_id, request.custom_id), request.custom_id, unexecuted_code, message
            )
            for request in requests[executed:]
        )
    output_lines: list[tuple[str, bytes]] = []
    for dimensions, group in to_embed.items():
        vectors = embed([request.text for request in group], dimensions)
        for request, vector in zip(group, vectors, strict=True):
            request_id = _request_id(batch_id, request.custom_id)
            tokens = count_tokens(request.text)
            input_tokens += tokens
            line = output_line(request_id, request.custom_id, request.model, vector, tokens=tokens,
                               encoding_format=request.encoding_format)
            output_lines.append((request_id, line))
    # Output order is not input order at OpenAI either; a stable shuffle keeps readers honest.
    output_lines.sort()
    return BatchResults(
        output=b"".join(line for _, line in output_lines),
        errors=b"".join(error_lines),
        completed=len(output_lines),
        failed=len(error_lines),
        input_tokens=input_tokens,
    )
