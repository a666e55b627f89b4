"""State names of the two workflows (the reference's names; word states per its Key Differences)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WorkflowKind = Literal["line", "word"]


@dataclass(frozen=True)
class StateNames:
    list_pending: str
    check_pending: str
    no_pending: str
    normalize_pending: str
    poll: str
    poll_one: str
    poll_failed: str
    split: str
    check_chunks: str
    no_chunks: str
    load_chunks: str
    normalize_chunks: str
    process_chunks: str
    process_one: str
    group_chunks: str
    check_group_count: str
    create_groups: str
    check_groups: str
    load_groups: str
    merge_groups: str
    merge_one: str
    prepare_hierarchical: str
    prepare_final: str
    final_merge: str
    mark_complete: str
    succeeded: str


LINE_NAMES = StateNames(
    list_pending="ListPendingBatches", check_pending="CheckPendingBatches",
    no_pending="NoPendingBatches", normalize_pending="NormalizePendingBatches",
    poll="PollBatches", poll_one="PollBatch", poll_failed="PollBatchFailed",
    split="SplitIntoChunks", check_chunks="CheckChunksSource", no_chunks="NoChunksToProcess",
    load_chunks="LoadChunksFromS3", normalize_chunks="NormalizeChunkData",
    process_chunks="ProcessChunksInParallel", process_one="ProcessChunk",
    group_chunks="GroupChunksForMerge", check_group_count="CheckChunkGroupCount",
    create_groups="CreateChunkGroups", check_groups="CheckChunkGroupsSource",
    load_groups="LoadChunkGroupsFromS3", merge_groups="MergeChunkGroupsInParallel",
    merge_one="MergeChunkGroup", prepare_hierarchical="PrepareHierarchicalFinalMerge",
    prepare_final="PrepareFinalMerge", final_merge="FinalMerge",
    mark_complete="MarkBatchesComplete", succeeded="IngestionSucceeded",
)

WORD_NAMES = StateNames(
    list_pending="ListPendingWordBatches", check_pending="CheckPendingWordBatches",
    no_pending="NoPendingWordBatches", normalize_pending="NormalizePendingWordBatches",
    poll="PollWordBatches", poll_one="PollWordBatch", poll_failed="PollWordBatchFailed",
    split="SplitWordIntoChunks", check_chunks="CheckWordChunksSource", no_chunks="NoWordChunksToProcess",
    load_chunks="LoadWordChunksFromS3", normalize_chunks="NormalizeWordChunkData",
    process_chunks="ProcessWordChunksInParallel", process_one="ProcessWordChunk",
    group_chunks="GroupWordChunksForMerge", check_group_count="CheckWordChunkGroupCount",
    create_groups="CreateWordChunkGroups", check_groups="CheckWordChunkGroupsSource",
    load_groups="LoadWordChunkGroupsFromS3", merge_groups="MergeWordChunkGroupsInParallel",
    merge_one="MergeWordChunkGroup", prepare_hierarchical="PrepareWordHierarchicalFinalMerge",
    prepare_final="PrepareWordFinalMerge", final_merge="WordFinalMerge",
    mark_complete="MarkWordBatchesComplete", succeeded="WordIngestionSucceeded",
)


def names_for(kind: WorkflowKind) -> StateNames:
    if kind == "line":
        return LINE_NAMES
    if kind == "word":
        return WORD_NAMES
    raise ValueError(f"workflow kind must be 'line' or 'word', not {kind!r}")


def failed_state(name: str) -> str:
    """The Fail state a step's Catch routes to."""
    return f"{name}Failed"
