"""Pydantic models of every step's event and result (the JSON contracts of the reference).

Rules kept here once:
- Step Functions passes JSON null for keys that exist (lesson 5): every optional field accepts null,
  and list fields normalise null to "absent" explicitly, never via `dict.get(k, default)`.
- Unknown keys are ignored on input (state data carries more than a step needs) and never emitted.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from embedding_ingest.stores.records import ItemKind

# Thresholds of the reference, in bytes of compact JSON.
MANIFEST_MAX_INLINE_BATCHES = 50
INLINE_PAYLOAD_LIMIT = 150 * 1024
POLL_RESULTS_INLINE_LIMIT = 100 * 1024
CHUNK_SIZE = 10
GROUP_SIZE = 10
PROBLEM_TEXT_LIMIT = 160
GROUPING_THRESHOLD_CHUNKS = 4  # total_chunks > 4 => hierarchical merge (the reference's diagram)


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


def payload_size(model: BaseModel) -> int:
    """Size in bytes of the compact JSON a model becomes in state data."""
    return len(model.model_dump_json().encode())


# -- 1. ListPendingBatches --------------------------------------------------------------------
class ListPendingEvent(Event):
    batch_type: ItemKind
    execution_id: str
    max_batches: int | None = None


class PendingBatchRef(Result):
    batch_id: str
    openai_batch_id: str


class ManifestEntry(PendingBatchRef):
    index: int


class PollManifest(Result):
    execution_id: str
    created_at: str
    total_batches: int
    batch_type: ItemKind
    batches: list[ManifestEntry]


class ListPendingResult(Result):
    pending_batches: list[PendingBatchRef] | None
    batch_indices: list[int]
    use_s3: bool
    manifest_s3_key: str | None
    manifest_s3_bucket: str | None
    execution_id: str
    total_batches: int


# -- 2. PollBatches ---------------------------------------------------------------------------
PollAction = Literal["wait", "process_results", "batch_failed", "nothing_to_ingest"]


class PollEvent(Event):
    batch_index: int | None = None
    manifest_s3_key: str | None = None
    manifest_s3_bucket: str | None = None
    pending_batches: list[PendingBatchRef] | None = None
    skip_sqs_notification: bool | None = None
    # Backward-compatible direct form.
    batch_id: str | None = None
    openai_batch_id: str | None = None


class PollResult(Result):
    batch_id: str
    openai_batch_id: str
    batch_status: str  # the provider's status word
    action: PollAction
    results_count: int = 0  # output lines read
    delta_id: str | None = None
    delta_key: str | None = None
    embedding_count: int = 0  # embeddings written to the delta
    released_count: int = 0  # items sent back to NONE (errors, missing, invalid)
    storage: Literal["s3_delta"] | None = None
    collection: str
    database: str
    # Rejected output lines/items: how many, and the first one (truncated). Every one is logged and the
    # released items carry their reason in the ledger; a bounded result keeps 250 of them in state data.
    problem_count: int = 0
    first_problem: str | None = Field(default=None, max_length=PROBLEM_TEXT_LIMIT)


class PollFailure(Result):
    """A poll iteration the workflow's per-iteration Catch turned into data instead of failing the Map."""

    model_config = ConfigDict(extra="ignore")

    batch_index: int | None = None
    action: Literal["poll_failed"] = "poll_failed"
    error: Any = None


# What a PollBatches Map iteration yields: a result, or a caught failure (skipped downstream).
PollOutcome = Annotated[PollResult | PollFailure, Field(discriminator="action")]


# -- 3-6. SplitIntoChunks / LoadChunksFromS3 --------------------------------------------------
class SplitChunksEvent(Event):
    batch_id: str
    poll_results: list[PollOutcome] | None = None


class DeltaRef(Result):
    batch_id: str
    delta_key: str
    embedding_count: int
    database: str
    collection: str


class Chunk(Result):
    chunk_index: int
    batch_id: str
    operation: Literal["process_chunk"] = "process_chunk"
    delta_results: list[DeltaRef] | None
    chunks_s3_key: str | None = None
    chunks_s3_bucket: str | None = None


class ChunkedData(Result):
    batch_id: str
    chunks: list[Chunk]
    total_chunks: int
    use_s3: bool
    chunks_s3_key: str | None
    chunks_s3_bucket: str | None


class SplitChunksResult(Result):
    chunked_data: ChunkedData


class LoadChunksEvent(Event):
    batch_id: str
    chunks_s3_key: str
    chunks_s3_bucket: str | None = None


# -- 7. ProcessChunksInParallel ---------------------------------------------------------------
class ProcessChunkEvent(Event):
    chunk_index: int
    batch_id: str
    operation: str | None = None
    delta_results: list[DeltaRef] | None = None
    chunks_s3_key: str | None = None
    chunks_s3_bucket: str | None = None


class IntermediateRef(Result):
    intermediate_key: str
    total_embeddings: int | None = None


# -- 10-12. CreateChunkGroups / LoadChunkGroupsFromS3 -----------------------------------------
class CreateChunkGroupsEvent(Event):
    batch_id: str
    chunk_results: list[IntermediateRef]
    group_size: int | None = None
    poll_results: list[PollOutcome] | None = None


class GroupRef(Result):
    group_index: int
    batch_id: str
    groups_s3_key: str
    groups_s3_bucket: str | None
    chunk_group: list[IntermediateRef] | None = None


class ChunkGroups(Result):
    batch_id: str
    groups: list[GroupRef] | None = None
    groups_s3_key: str
    groups_s3_bucket: str | None
    total_groups: int
    use_s3: bool
    poll_results_s3_key: str | None
    poll_results_s3_bucket: str | None
    poll_results: list[PollOutcome] | None


class CreateChunkGroupsResult(Result):
    chunk_groups: ChunkGroups


class LoadGroupsEvent(Event):
    batch_id: str
    groups_s3_key: str
    groups_s3_bucket: str | None = None
    poll_results_s3_key: str | None = None
    poll_results_s3_bucket: str | None = None
    poll_results: list[PollOutcome] | None = None  # passed through when not offloaded (never dropped)


# -- 13. MergeChunkGroupsInParallel -----------------------------------------------------------
class MergeChunkGroupEvent(Event):
    batch_id: str
    group_index: int
    chunk_group: list[IntermediateRef] | None = None
    groups_s3_key: str | None = None
    groups_s3_bucket: str | None = None


# -- 15. FinalMerge ---------------------------------------------------------------------------
class FinalMergeEvent(Event):
    batch_id: str
    database: str
    operation: str | None = None
    chunk_results: list[IntermediateRef] | None = None
    poll_results: list[PollOutcome] | None = None
    poll_results_s3_key: str | None = None
    poll_results_s3_bucket: str | None = None


class FinalMergeOutcome(Result):
    statusCode: Literal[200] = 200  # noqa: N815 - the reference's key; failures raise instead
    batch_id: str
    database: str
    snapshot_key: str
    snapshot_version: str
    total_embeddings: int  # embeddings in the published snapshot
    added_embeddings: int  # embeddings merged in from this run's intermediates
    processing_time_seconds: float
    deleted_embeddings: int = 0  # published ids removed by deletions (issue 10)
    replaced_embeddings: int = 0  # published ids given a newer record (changed items re-embedded)
    metadata_updated: int = 0  # published records given newer living metadata, not re-embedded (issue 23)
    message: str
    # Failed after the version was published, without failing it (PublishOutcome; None: nothing):
    mirror_error: str | None = None  # latest/pointer.json or the plain Chroma mirror not refreshed
    prune_error: str | None = None  # old versions not pruned (the next publish retries)


class FinalMergeResult(Result):
    final_merge_result: FinalMergeOutcome


# -- 16. MarkBatchesComplete ------------------------------------------------------------------
class MarkCompleteEvent(Event):
    database: str
    execution_id: str | None = None  # for its log lines (the runbook filters them by execution)
    snapshot_version: str | None = None
    poll_results: list[PollOutcome] | None = None
    poll_results_s3_key: str | None = None
    poll_results_s3_bucket: str | None = None


class MarkCompleteOutcome(Result):
    batches_marked: int
    batch_ids: list[str] = Field(default_factory=list)
    items_marked: int = 0
    items_not_published: int = 0
    incomplete_batch_ids: list[str] = Field(default_factory=list)  # some items not in the snapshot yet
    snapshot_version: str | None = None  # the published version the items were checked against


class MarkCompleteResult(Result):
    mark_complete_result: MarkCompleteOutcome
