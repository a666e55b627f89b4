"""Steps 7 and 13 (embedding-vector-compact): merge deltas into chunk intermediates, and chunk
intermediates into group intermediates. Every merge counts what goes in and what comes out (lesson 4)
and checks each source against the count the previous step reported."""

from __future__ import annotations

from embedding_ingest.snapshots import SnapshotManifest, merge_snapshots, read_manifest
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import IntermediateRef, MergeChunkGroupEvent, ProcessChunkEvent
from embedding_ingest.steps.exceptions import EmbeddingCountMismatchError, StepInputError
from embedding_ingest.steps.keys import chunk_intermediate_prefix, group_merged_prefix, key_part
from embedding_ingest.steps.logs import logger, step_log_context
from embedding_ingest.steps.offload import CHUNK_LIST, GROUP_LIST, parse_event, pick, read_offloaded
from embedding_ingest.stores.exceptions import CorruptObjectError

STEP = "embedding-vector-compact"


def process_chunk(event: dict, ctx: StepContext) -> dict:
    request = parse_event(ProcessChunkEvent, event, f"{STEP}/process_chunk")
    batch_id = key_part(request.batch_id, "batch_id")
    deltas = request.delta_results
    if deltas is None:  # null, not missing, is what Step Functions sends (lesson 5)
        if not request.chunks_s3_key:
            raise StepInputError(f"{STEP}/process_chunk: chunk {request.chunk_index} has neither "
                                 "delta_results nor chunks_s3_key")
        chunk = pick(read_offloaded(ctx.objects, request.chunks_s3_key, CHUNK_LIST), request.chunk_index,
                     request.chunks_s3_key)
        if chunk.delta_results is None:
            raise CorruptObjectError(request.chunks_s3_key,
                                     f"chunk {request.chunk_index} has no delta_results")
        deltas = chunk.delta_results
    target = chunk_intermediate_prefix(batch_id, request.chunk_index)
    with step_log_context(batch_id=batch_id, chunk_index=request.chunk_index):
        manifest = merge_counted(ctx, target, {d.delta_key: d.embedding_count for d in deltas})
    return IntermediateRef(intermediate_key=target, total_embeddings=manifest.count).model_dump(mode="json")


def merge_chunk_group(event: dict, ctx: StepContext) -> dict:
    request = parse_event(MergeChunkGroupEvent, event, f"{STEP}/merge_chunk_group")
    batch_id = key_part(request.batch_id, "batch_id")
    group = request.chunk_group
    if group is None:
        if not request.groups_s3_key:
            raise StepInputError(f"{STEP}/merge_chunk_group: group {request.group_index} has neither "
                                 "chunk_group nor groups_s3_key")
        group = pick(read_offloaded(ctx.objects, request.groups_s3_key, GROUP_LIST), request.group_index,
                     request.groups_s3_key)
    target = group_merged_prefix(batch_id, request.group_index)
    with step_log_context(batch_id=batch_id, group_index=request.group_index):
        # Every member of the group, however many (lesson 4: never a hard-coded slice).
        manifest = merge_counted(ctx, target, {ref.intermediate_key: ref.total_embeddings for ref in group})
    return IntermediateRef(intermediate_key=target, total_embeddings=manifest.count).model_dump(mode="json")


def source_manifests(ctx: StepContext, reported: dict[str, int | None]) -> dict[str, SnapshotManifest]:
    """Each source's manifest, checked against the count the step before reported for it."""
    manifests = {}
    for key, count in reported.items():
        manifest = read_manifest(ctx.objects, key)
        if count is not None and manifest.count != count:
            raise EmbeddingCountMismatchError(
                f"snapshot {key!r} (the previous step reported its count)", count, manifest.count)
        manifests[key] = manifest
    return manifests


def merge_counted(ctx: StepContext, target: str, reported: dict[str, int | None]) -> SnapshotManifest:
    """Merge `reported`'s snapshots into `target`; the result must hold exactly the sum of their counts.
    A rerun finds the committed target (merge_snapshots returns it) and the counts are checked again."""
    if not reported:
        raise StepInputError(f"nothing to merge into {target!r}: no sources")
    sources = list(reported)
    manifests = source_manifests(ctx, reported)
    collection = _one_collection(manifests, target)
    # Records and deletions in must all be accounted for: kept, or dropped because a newer entry for
    # the same id won (superseded; snapshots/revisions.py).
    expected = sum(m.count + m.deletions for m in manifests.values())
    merged = merge_snapshots(ctx.objects, sources, target, collection=collection, profile="flat")
    if merged.count + merged.deletions + merged.superseded != expected:
        raise EmbeddingCountMismatchError(f"merge of {sources} into {target!r}", expected,
                                          merged.count + merged.deletions + merged.superseded)
    logger.info("merged snapshots", extra={"target": target, "sources": len(sources), "count": merged.count,
                                           "deletions": merged.deletions, "superseded": merged.superseded})
    return merged


def _one_collection(manifests: dict[str, SnapshotManifest], target: str) -> str:
    collections = {m.collection for m in manifests.values()}
    if len(collections) != 1:
        raise StepInputError(f"sources of {target!r} mix collections {sorted(collections)}")
    return collections.pop()
