"""Builds the line and word ingestion state machines (ASL) of the reference.

Data flow, and why it is shaped so:
- Each Task calls its Lambda through the optimized integration (arn:aws:states:::lambda:invoke) and
  gets exactly its contract event (steps/contracts.py) as the Payload; what it hands on is the
  function's result (the Payload of Invoke's response), so every contract is the same as with a
  function ARN as Resource.
- Results that wrap one key ({"chunked_data": ...}) are lifted into the state data under that key by a
  ResultSelector listing the contract's fields, so the state keeps the reference's structure and the
  execution output ends with final_merge_result and mark_complete_result (lesson 4).
- poll_results stay at the top of the state data from PollBatches to MarkBatchesComplete: a step that
  returns `poll_results: null` (offloaded or not echoed) can never make mark-complete see nothing
  (lesson 5). The S3 copy's key travels alongside.
- NormalizeChunkData and GroupChunksForMerge rebuild the state from what later steps need, dropping
  what they do not (pending list, chunk list) to stay far from the 256 KB payload limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from asl_local.arns import lambda_function_arn
from embedding_ingest.pipeline.policies import catch_to, fail_fast_catch, fail_state, retry_policy
from embedding_ingest.pipeline.state_names import WorkflowKind, failed_state, names_for
from embedding_ingest.steps.contracts import (
    GROUP_SIZE,
    GROUPING_THRESHOLD_CHUNKS,
    ChunkedData,
    ChunkGroups,
    FinalMergeOutcome,
    ListPendingResult,
    MarkCompleteOutcome,
)

# The optimized integration (https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html):
# what AWS recommends, and what records the Task* events the reference's runbook filters on.
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
LIST_PENDING = "embedding-list-pending"
POLL = {"line": "embedding-line-poll", "word": "embedding-word-poll"}
SPLIT_CHUNKS = "embedding-split-chunks"
VECTOR_COMPACT = "embedding-vector-compact"
CREATE_CHUNK_GROUPS = "embedding-create-chunk-groups"
MARK_BATCHES_COMPLETE = "embedding-mark-batches-complete"
FUNCTION_NAMES = (LIST_PENDING, POLL["line"], POLL["word"], SPLIT_CHUNKS, VECTOR_COMPACT,
                  CREATE_CHUNK_GROUPS, MARK_BATCHES_COMPLETE)

# As the reference wrote it; AWS (and the local engine) run at most 40 inline Map iterations at once.
POLL_CONCURRENCY = 50
CHUNK_CONCURRENCY = 10
GROUP_CONCURRENCY = 6


def local_resource_arn(function_name: str) -> str:
    """The function's ARN as the local engine knows it (asl_local's default region and account)."""
    return lambda_function_arn(function_name)


def _fields_of(model: type[BaseModel], at: str) -> dict[str, str]:
    """A payload template copying every field of `model` from the object at path `at`."""
    return {f"{name}.$": f"{at}.{name}" for name in model.model_fields}


def _task(function_arn: str, comment: str, *, parameters: dict[str, Any] | None, on_error: str,
          result_selector: dict[str, Any] | None = None, result_path: str | None = "$",
          next_state: str | None = None) -> dict[str, Any]:
    """A Task calling `function_arn` through the optimized Lambda integration: `parameters` become the
    Payload (None: the whole state input). The task's result is Invoke's response, the function's
    result under `Payload`, so a `result_selector` reads from `$.Payload...`; without one the step's
    output is the Payload itself (OutputPath), as before the integration. OutputPath goes only with
    ResultPath `$`: after another ResultPath it would select from the merged state."""
    payload = {"Payload": parameters} if parameters is not None else {"Payload.$": "$"}
    spec: dict[str, Any] = {"Type": "Task", "Comment": comment, "Resource": LAMBDA_INVOKE,
                            "Parameters": {"FunctionName": function_arn, **payload}}
    if result_selector is not None:
        spec["ResultSelector"] = result_selector
    spec["ResultPath"] = result_path
    if result_selector is None:
        if result_path != "$":
            raise ValueError(f"{comment!r}: a Task without ResultSelector must have ResultPath '$'")
        spec["OutputPath"] = "$.Payload"
    spec["Retry"] = retry_policy()
    spec["Catch"] = catch_to(on_error)
    spec.update({"Next": next_state} if next_state else {"End": True})
    return spec


def _inline_map(comment: str, *, items_path: str, concurrency: int, item_selector: dict[str, Any],
                processor: dict[str, Any], result_path: str, next_state: str,
                on_error: str) -> dict[str, Any]:
    return {"Type": "Map", "Comment": comment, "ItemsPath": items_path, "MaxConcurrency": concurrency,
            "ItemSelector": item_selector,
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **processor},
            "ResultPath": result_path, "Catch": catch_to(on_error), "Next": next_state}


def _single_task_processor(name: str, resource: str, comment: str) -> dict[str, Any]:
    """An iterator of one Task (payload = the iteration input) that fails the Map on error."""
    return {"StartAt": name, "States": {
        name: _task(resource, comment, parameters=None, on_error=failed_state(name)),
        failed_state(name): fail_state(f"{name} failed after retries"),
    }}


def build_definition(kind: WorkflowKind, resource_for: Callable[[str], str], *,
                     max_batches: int | None = None) -> dict[str, Any]:
    """The state machine of the `kind` ("line" | "word") ingestion workflow. `resource_for` maps a
    function name to the FunctionName its Tasks invoke (a Lambda ARN); `max_batches` caps the batches
    one execution takes (None: the list step's setting)."""
    n = names_for(kind)
    database = f"{kind}s"
    states: dict[str, Any] = {}

    def add_task(name: str, function: str, comment: str, **fields: Any) -> None:
        states[name] = _task(resource_for(function), comment, on_error=failed_state(name), **fields)
        states[failed_state(name)] = fail_state(f"{name} failed after retries")

    add_task(n.list_pending, LIST_PENDING, "Active batches of this kind, oldest first, capped",
             parameters={"batch_type": kind, "execution_id.$": "$$.Execution.Name",
                         "max_batches": max_batches},
             next_state=n.check_pending)
    states[n.check_pending] = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.total_batches", "NumericGreaterThan": 0,
                     "Next": n.normalize_pending}],
        "Default": n.no_pending}
    states[n.no_pending] = {"Type": "Succeed", "Comment": "Nothing to poll"}
    states[n.normalize_pending] = {
        "Type": "Pass", "Comment": "Exactly the listing's fields, inline or manifest mode",
        "Parameters": _fields_of(ListPendingResult, "$"), "Next": n.poll}

    poll_one = _task(resource_for(POLL[kind]), "Poll one batch; write its delta", parameters=None,
                     on_error=n.poll_failed)
    misconfigured = f"{n.poll_one}Misconfigured"  # ({n.poll_one}Failed is the per-batch Pass below)
    poll_one["Catch"] = fail_fast_catch(misconfigured) + poll_one["Catch"]
    poll_processor = {"StartAt": n.poll_one, "States": {
        n.poll_one: poll_one,
        misconfigured: fail_state("Polling cannot work as configured (access, missing resource)"),
        n.poll_failed: {"Type": "Pass", "Comment": "One batch failing to poll must not block the others",
                        "Parameters": {"batch_index.$": "$.batch_index", "action": "poll_failed",
                                       "error.$": "$.error"},
                        "End": True},
    }}
    states[n.poll] = _inline_map(
        "Poll every listed batch", items_path="$.batch_indices", concurrency=POLL_CONCURRENCY,
        item_selector={"batch_index.$": "$$.Map.Item.Value",
                       "manifest_s3_key.$": "$.manifest_s3_key",
                       "manifest_s3_bucket.$": "$.manifest_s3_bucket",
                       "pending_batches.$": "$.pending_batches",
                       "skip_sqs_notification": True},
        processor=poll_processor, result_path="$.poll_results", next_state=n.split,
        on_error=failed_state(n.poll))
    states[failed_state(n.poll)] = fail_state("PollBatches failed")

    add_task(n.split, SPLIT_CHUNKS, "Deltas into chunks of 10; offloaded to S3 when large",
             parameters={"batch_id.$": "$$.Execution.Name", "poll_results.$": "$.poll_results"},
             result_selector=_fields_of(ChunkedData, "$.Payload.chunked_data"),
             result_path="$.chunked_data",
             next_state=n.check_chunks)
    states[n.check_chunks] = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.chunked_data.total_chunks", "NumericEquals": 0, "Next": n.no_chunks},
                    {"Variable": "$.chunked_data.use_s3", "BooleanEquals": True, "Next": n.load_chunks}],
        "Default": n.normalize_chunks}
    states[n.no_chunks] = {"Type": "Succeed",
                           "Comment": "No delta to merge (batches still running): nothing is marked"}
    add_task(n.load_chunks, SPLIT_CHUNKS, "Chunk index array for chunks offloaded to S3",
             parameters={"operation": "load_chunks_from_s3",
                         "batch_id.$": "$.chunked_data.batch_id",
                         "chunks_s3_key.$": "$.chunked_data.chunks_s3_key",
                         "chunks_s3_bucket.$": "$.chunked_data.chunks_s3_bucket"},
             result_selector=_fields_of(ChunkedData, "$.Payload.chunked_data"),
             result_path="$.chunked_data",
             next_state=n.normalize_chunks)
    states[n.normalize_chunks] = {
        "Type": "Pass", "Comment": "Keep only what the merges need",
        "Parameters": {"chunked_data": _fields_of(ChunkedData, "$.chunked_data"),
                       "poll_results.$": "$.poll_results"},
        "Next": n.process_chunks}

    states[n.process_chunks] = _inline_map(
        "One intermediate snapshot per chunk", items_path="$.chunked_data.chunks",
        concurrency=CHUNK_CONCURRENCY,
        item_selector={"chunk_index.$": "$$.Map.Item.Value.chunk_index",
                       "batch_id.$": "$$.Map.Item.Value.batch_id",
                       "operation": "process_chunk",
                       "delta_results.$": "$$.Map.Item.Value.delta_results",
                       "chunks_s3_key.$": "$.chunked_data.chunks_s3_key",
                       "chunks_s3_bucket.$": "$.chunked_data.chunks_s3_bucket"},
        processor=_single_task_processor(n.process_one, resource_for(VECTOR_COMPACT),
                                         "Merge one chunk's deltas"),
        result_path="$.chunk_results", next_state=n.group_chunks,
        on_error=failed_state(n.process_chunks))
    states[failed_state(n.process_chunks)] = fail_state("A chunk could not be processed")

    states[n.group_chunks] = {
        "Type": "Pass", "Comment": "What grouping and the final merge need",
        "Parameters": {"batch_id.$": "$.chunked_data.batch_id",
                       "total_chunks.$": "$.chunked_data.total_chunks",
                       "chunk_results.$": "$.chunk_results",
                       "group_size": GROUP_SIZE,
                       "poll_results.$": "$.poll_results"},
        "Next": n.check_group_count}
    states[n.check_group_count] = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.total_chunks", "NumericGreaterThan": GROUPING_THRESHOLD_CHUNKS,
                     "Next": n.create_groups}],
        "Default": n.prepare_final}

    add_task(n.create_groups, CREATE_CHUNK_GROUPS, "Groups of chunk results, always offloaded",
             parameters={"batch_id.$": "$.batch_id", "chunk_results.$": "$.chunk_results",
                         "group_size.$": "$.group_size", "poll_results.$": "$.poll_results"},
             result_selector=_fields_of(ChunkGroups, "$.Payload.chunk_groups"),
             result_path="$.chunk_groups",
             next_state=n.check_groups)
    states[n.check_groups] = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.chunk_groups.use_s3", "BooleanEquals": True, "Next": n.load_groups}],
        "Default": n.merge_groups}
    add_task(n.load_groups, CREATE_CHUNK_GROUPS, "Group index array for groups offloaded to S3",
             parameters={"operation": "load_groups_from_s3",
                         "batch_id.$": "$.chunk_groups.batch_id",
                         "groups_s3_key.$": "$.chunk_groups.groups_s3_key",
                         "groups_s3_bucket.$": "$.chunk_groups.groups_s3_bucket",
                         "poll_results_s3_key.$": "$.chunk_groups.poll_results_s3_key",
                         "poll_results_s3_bucket.$": "$.chunk_groups.poll_results_s3_bucket",
                         "poll_results.$": "$.chunk_groups.poll_results"},
             result_selector=_fields_of(ChunkGroups, "$.Payload.chunk_groups"),
             result_path="$.chunk_groups",
             next_state=n.merge_groups)
    states[n.merge_groups] = _inline_map(
        "One merged intermediate per group", items_path="$.chunk_groups.groups",
        concurrency=GROUP_CONCURRENCY,
        item_selector={"operation": "merge_chunk_group",
                       "batch_id.$": "$.chunk_groups.batch_id",
                       "group_index.$": "$$.Map.Item.Value.group_index",
                       "chunk_group.$": "$$.Map.Item.Value.chunk_group",
                       "groups_s3_key.$": "$.chunk_groups.groups_s3_key",
                       "groups_s3_bucket.$": "$.chunk_groups.groups_s3_bucket"},
        processor=_single_task_processor(n.merge_one, resource_for(VECTOR_COMPACT),
                                         "Merge one group's intermediates"),
        result_path="$.merged_groups", next_state=n.prepare_hierarchical,
        on_error=failed_state(n.merge_groups))
    states[failed_state(n.merge_groups)] = fail_state("A chunk group could not be merged")

    poll_copy = {"poll_results.$": "$.poll_results"}
    states[n.prepare_hierarchical] = {
        "Type": "Pass", "Comment": "Final merge of the merged groups",
        "Parameters": {"batch_id.$": "$.batch_id", "operation": "final_merge",
                       "chunk_results.$": "$.merged_groups", **poll_copy,
                       "poll_results_s3_key.$": "$.chunk_groups.poll_results_s3_key",
                       "poll_results_s3_bucket.$": "$.chunk_groups.poll_results_s3_bucket"},
        "Next": n.final_merge}
    states[n.prepare_final] = {
        "Type": "Pass", "Comment": "Final merge of the chunk intermediates directly",
        "Parameters": {"batch_id.$": "$.batch_id", "operation": "final_merge",
                       "chunk_results.$": "$.chunk_results", **poll_copy,
                       "poll_results_s3_key": None, "poll_results_s3_bucket": None},
        "Next": n.final_merge}

    poll_refs = {**poll_copy, "poll_results_s3_key.$": "$.poll_results_s3_key",
                 "poll_results_s3_bucket.$": "$.poll_results_s3_bucket"}
    add_task(n.final_merge, VECTOR_COMPACT, "Publish the next snapshot version under the lock",
             parameters={"batch_id.$": "$.batch_id", "database": database, "operation": "final_merge",
                         "chunk_results.$": "$.chunk_results", **poll_refs},
             result_selector=_fields_of(FinalMergeOutcome, "$.Payload.final_merge_result"),
             result_path="$.final_merge_result", next_state=n.mark_complete)
    add_task(n.mark_complete, MARK_BATCHES_COMPLETE, "Items in the published version -> SUCCESS",
             parameters={"database": database, "execution_id.$": "$$.Execution.Name",
                         "snapshot_version.$": "$.final_merge_result.snapshot_version", **poll_refs},
             result_selector=_fields_of(MarkCompleteOutcome, "$.Payload.mark_complete_result"),
             result_path="$.mark_complete_result", next_state=n.succeeded)
    states[n.succeeded] = {"Type": "Succeed"}

    return {"Comment": f"{kind.capitalize()} embedding ingestion: poll OpenAI batches, merge deltas "
                       f"hierarchically, publish a '{database}' snapshot, mark batches complete",
            "StartAt": n.list_pending, "States": states}


def render_definition(kind: WorkflowKind, *, max_batches: int | None = None) -> str:
    """The definition as JSON text, with local Lambda ARNs as function names."""
    return json.dumps(build_definition(kind, local_resource_arn, max_batches=max_batches), indent=2)
