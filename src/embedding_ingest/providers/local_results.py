"""Runs a validated batch's requests on the local encoder and writes OpenAI's output and error files.

Lines are written as they are made, a thousand embeddings at a time: a 50,000 x 1536-d output is about
0.4 GB as base64 and 1.7 GB as floats, which the engine never holds (bench/poll_memory.py builds one)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from embedding_ingest.providers.batch_files import failed_request_line, output_line, unexecuted_request_line
from embedding_ingest.providers.faults import FaultPlan
from embedding_ingest.providers.models import native_dimensions, takes_dimensions
from embedding_ingest.providers.request_validation import EmbeddingRequest
from embedding_ingest.providers.tokens import count_tokens

Embedder = Callable[[Sequence[str], int | None, str | None], np.ndarray]  # (texts, dimensions, model)

_UNEXECUTED_MESSAGES = {
    "batch_expired": "This request could not be executed before the completion window expired.",
}
# What OpenAI answers a `dimensions` for a model that takes none (ada-002; SciPhi-AI/R2R#768).
NO_DIMENSIONS_MESSAGE = "This model does not support specifying dimensions."
_EMBED_CHUNK = 1_000  # requests embedded (and their lines written) at a time


@dataclass(frozen=True)
class BatchResults:
    completed: int  # lines written to the output file (0: the batch has no output file)
    failed: int  # lines written to the error file (0: no error file)
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
    output: BinaryIO,
    errors: BinaryIO,
) -> BatchResults:
    """The first `executed` requests run; the rest go to the error file under `unexecuted_code`, or
    nowhere when it is None (a cancelled batch's requests that never ran appear in no file). Output
    lines are written to `output`, failures to `errors`."""
    failed = 0
    ran: list[tuple[str, EmbeddingRequest]] = []
    for position, request in enumerate(requests[:executed], start=1):
        message = None
        if faults.request_fails(position, request.custom_id):
            message = f"request {request.custom_id!r} failed by fault injection"
        elif request.dimensions is not None and not takes_dimensions(request.model):
            message = NO_DIMENSIONS_MESSAGE
        if message is not None:
            errors.write(failed_request_line(_request_id(batch_id, request.custom_id), request.custom_id, 400,
                                             message))
            failed += 1
        else:
            ran.append((_request_id(batch_id, request.custom_id), request))
    if unexecuted_code is not None:
        message = _UNEXECUTED_MESSAGES.get(unexecuted_code,
                                           f"This request was not executed ({unexecuted_code}).")
        for request in requests[executed:]:
            errors.write(unexecuted_request_line(_request_id(batch_id, request.custom_id), request.custom_id,
                                                 unexecuted_code, message))
            failed += 1
    # Output order is not input order at OpenAI either; a stable shuffle (by request id) keeps readers honest.
    ran.sort(key=lambda pair: pair[0])
    input_tokens = 0
    for start in range(0, len(ran), _EMBED_CHUNK):
        chunk = ran[start:start + _EMBED_CHUNK]
        vectors = _embedded(chunk, embed)
        for (request_id, request), vector in zip(chunk, vectors, strict=True):
            tokens = count_tokens(request.text)
            input_tokens += tokens
            output.write(output_line(request_id, request.custom_id, request.model, vector, tokens=tokens,
                                     encoding_format=request.encoding_format))
    return BatchResults(completed=len(ran), failed=failed, input_tokens=input_tokens)


def _embedded(chunk: Sequence[tuple[str, EmbeddingRequest]], embed: Embedder) -> list[np.ndarray]:
    """One vector per request, each by its own model at its own width (no `dimensions`: the model's
    native width; None: the engine's default, for local models)."""
    keys = [(request.model, request.dimensions or native_dimensions(request.model)) for _, request in chunk]
    vectors: list[np.ndarray | None] = [None] * len(chunk)
    for model, width in dict.fromkeys(keys):
        rows = [n for n, key in enumerate(keys) if key == (model, width)]
        for n, vector in zip(rows, embed([chunk[n][1].text for n in rows], width, model), strict=True):
            vectors[n] = vector
    return vectors  # type: ignore[return-value]
