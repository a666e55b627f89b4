"""Steps 10 and 12, CreateChunkGroups / LoadChunkGroupsFromS3 (embedding-create-chunk-groups).

Groups always go to `groups.json` (the reference's aggressive offloading); every chunk result lands
in exactly one group. poll_results ride along inline unless they pass their own, smaller limit.
"""

from __future__ import annotations

from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import (
    GROUP_SIZE,
    POLL_RESULTS_INLINE_LIMIT,
    ChunkGroups,
    CreateChunkGroupsEvent,
    CreateChunkGroupsResult,
    GroupRef,
    LoadGroupsEvent,
)
from embedding_ingest.steps.keys import group_poll_results_key, groups_key, key_part
from embedding_ingest.steps.logs import logger
from embedding_ingest.steps.offload import (
    GROUP_LIST,
    POLL_OUTCOMES,
    json_size,
    parse_event,
    read_offloaded,
)

STEP = "embedding-create-chunk-groups"


def create_chunk_groups(event: dict, ctx: StepContext) -> dict:
    request = parse_event(CreateChunkGroupsEvent, event, STEP)
    batch_id = key_part(request.batch_id, "batch_id")
    size = request.group_size or GROUP_SIZE
    refs = request.chunk_results
    groups = [refs[start:start + size] for start in range(0, len(refs), size)]
    key = groups_key(batch_id)
    ctx.objects.put_json(key, GROUP_LIST.dump_python(groups, mode="json"))

    poll_results = request.poll_results
    poll_key = poll_bucket = None
    if poll_results is not None:
        dumped = POLL_OUTCOMES.dump_python(poll_results, mode="json")
        if json_size(dumped) > POLL_RESULTS_INLINE_LIMIT:
            poll_key, poll_bucket = group_poll_results_key(batch_id), ctx.objects.location
            ctx.objects.put_json(poll_key, dumped)
            poll_results = None

    result = CreateChunkGroupsResult(chunk_groups=ChunkGroups(
        batch_id=batch_id, groups=None, groups_s3_key=key, groups_s3_bucket=ctx.objects.location,
        total_groups=len(groups), use_s3=True, poll_results_s3_key=poll_key,
        poll_results_s3_bucket=poll_bucket, poll_results=poll_results))
    logger.info("grouped chunk results", extra={
        "batch_id": batch_id, "chunks": len(refs), "group_size": size, "total_groups": len(groups),
        "poll_results_offloaded": poll_key is not None})
    return result.model_dump(mode="json")


def load_groups_from_s3(event: dict, ctx: StepContext) -> dict:
    request = parse_event(LoadGroupsEvent, event, f"{STEP}/load_groups_from_s3")
    batch_id = key_part(request.batch_id, "batch_id")
    groups = read_offloaded(ctx.objects, request.groups_s3_key, GROUP_LIST)
    stubs = [GroupRef(group_index=i, batch_id=batch_id, groups_s3_key=request.groups_s3_key,
                      groups_s3_bucket=ctx.objects.location, chunk_group=None) for i in range(len(groups))]
    result = CreateChunkGroupsResult(chunk_groups=ChunkGroups(
        batch_id=batch_id, groups=stubs, groups_s3_key=request.groups_s3_key,
        groups_s3_bucket=ctx.objects.location, total_groups=len(groups), use_s3=True,
        poll_results_s3_key=request.poll_results_s3_key,
        poll_results_s3_bucket=request.poll_results_s3_bucket, poll_results=request.poll_results))
    return result.model_dump(mode="json")
