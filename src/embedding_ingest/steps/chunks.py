"""Steps 3 and 5, SplitIntoChunks / LoadChunksFromS3 (embedding-split-chunks).

Only poll results that wrote a delta are chunked; every delta lands in exactly one chunk of
CHUNK_SIZE. When the inline output would pass the payload limit the chunks go to `chunks.json`
and the state carries only their indices.

This is also where a batch the workflow could not poll (its Map iteration caught after every retry,
action "poll_failed") stops being silent: each one is logged with its error and counted as PollFailures,
the metric the stack alarms on. The batch stays active; the next execution polls it again.
"""

from __future__ import annotations

from embedding_ingest.metrics import POLL_FAILURES, record_metric
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import (
    CHUNK_SIZE,
    INLINE_PAYLOAD_LIMIT,
    Chunk,
    ChunkedData,
    DeltaRef,
    LoadChunksEvent,
    PollFailure,
    SplitChunksEvent,
    SplitChunksResult,
    payload_size,
)
from embedding_ingest.steps.keys import chunks_key, key_part
from embedding_ingest.steps.logs import logger
from embedding_ingest.steps.offload import CHUNK_LIST, parse_event, read_offloaded, successful_polls

STEP = "embedding-split-chunks"


def delta_refs(poll_results) -> list[DeltaRef]:
    return [DeltaRef(batch_id=r.batch_id, delta_key=r.delta_key, embedding_count=r.embedding_count,
                     database=r.database, collection=r.collection)
            for r in successful_polls(poll_results) if r.delta_key]


def split_chunks(event: dict, ctx: StepContext) -> dict:
    request = parse_event(SplitChunksEvent, event, STEP)
    batch_id = key_part(request.batch_id, "batch_id")
    deltas = delta_refs(request.poll_results or [])
    _report_poll_failures(batch_id, [r for r in request.poll_results or [] if isinstance(r, PollFailure)])
    chunks = [Chunk(chunk_index=i, batch_id=batch_id, delta_results=deltas[start:start + CHUNK_SIZE])
              for i, start in enumerate(range(0, len(deltas), CHUNK_SIZE))]
    data = ChunkedData(batch_id=batch_id, chunks=chunks, total_chunks=len(chunks), use_s3=False,
                       chunks_s3_key=None, chunks_s3_bucket=None)
    result = SplitChunksResult(chunked_data=data)
    if payload_size(result) > INLINE_PAYLOAD_LIMIT:
        key = chunks_key(batch_id)
        ctx.objects.put_json(key, CHUNK_LIST.dump_python(chunks, mode="json"))
        result = SplitChunksResult(chunked_data=_indices_only(batch_id, len(chunks), key, ctx))
    skipped = len(request.poll_results or []) - len(deltas)
    logger.info("split poll results into chunks", extra={
        "batch_id": batch_id, "deltas": len(deltas), "skipped_without_delta": skipped,
        "total_chunks": len(chunks), "use_s3": result.chunked_data.use_s3})
    return result.model_dump(mode="json")


def _report_poll_failures(execution: str, failures: list[PollFailure]) -> None:
    for failure in failures:
        error = failure.error if isinstance(failure.error, dict) else {}
        logger.error("a batch could not be polled after every retry; it stays active for the next run",
                     extra={"batch_index": failure.batch_index, "error": error.get("Error"),
                            "cause": str(error.get("Cause", ""))[:500], "execution": execution})
    if failures:
        record_metric(POLL_FAILURES, len(failures))


def load_chunks_from_s3(event: dict, ctx: StepContext) -> dict:
    request = parse_event(LoadChunksEvent, event, f"{STEP}/load_chunks_from_s3")
    chunks = read_offloaded(ctx.objects, request.chunks_s3_key, CHUNK_LIST)
    data = _indices_only(key_part(request.batch_id, "batch_id"), len(chunks), request.chunks_s3_key, ctx)
    return SplitChunksResult(chunked_data=data).model_dump(mode="json")


def _indices_only(batch_id: str, total: int, key: str, ctx: StepContext) -> ChunkedData:
    """Chunk stubs without their deltas: process_chunk reads chunks.json[chunk_index] itself."""
    stubs = [Chunk(chunk_index=i, batch_id=batch_id, delta_results=None, chunks_s3_key=key,
                   chunks_s3_bucket=ctx.objects.location) for i in range(total)]
    return ChunkedData(batch_id=batch_id, chunks=stubs, total_chunks=total, use_s3=True,
                       chunks_s3_key=key, chunks_s3_bucket=ctx.objects.location)
