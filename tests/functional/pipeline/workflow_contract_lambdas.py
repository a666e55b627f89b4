"""Toy Lambdas speaking the step contracts (steps/contracts.py) for runs of the REAL built definitions.

Each handler checks that its event carries exactly the contract's fields, validates it with the
contract model and answers with a contract result, so a wiring mistake in the builder (a dropped or
renamed field, a wrong path) fails the run. Embedding counts flow through every merge so a run can
prove that nothing was lost on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from embedding_ingest.exceptions import TerminalError
from embedding_ingest.steps.contracts import (
    CHUNK_SIZE,
    Chunk,
    ChunkedData,
    ChunkGroups,
    CreateChunkGroupsEvent,
    DeltaRef,
    FinalMergeEvent,
    FinalMergeOutcome,
    GroupRef,
    IntermediateRef,
    ListPendingEvent,
    ListPendingResult,
    LoadChunksEvent,
    LoadGroupsEvent,
    MarkCompleteEvent,
    MarkCompleteOutcome,
    MergeChunkGroupEvent,
    PendingBatchRef,
    PollEvent,
    PollResult,
    ProcessChunkEvent,
    SplitChunksEvent,
)

BUCKET = "toy-bucket"
EMBEDDINGS_PER_BATCH = 3
DIRECT_POLL_FIELDS = {"batch_id", "openai_batch_id"}  # PollEvent's backward-compatible form


class UnknownToyBatchError(TerminalError):
    pass


def expect_fields(event: dict[str, Any], model: type, *, extra: set[str] = frozenset(),
                  minus: set[str] = frozenset()) -> None:
    expected = (set(model.model_fields) | extra) - minus
    assert set(event) == expected, f"{model.__name__}: got {sorted(event)}, expected {sorted(expected)}"


@dataclass
class ContractLambdas:
    kind: str = "line"
    batches: int = 3
    waiting: set[int] = field(default_factory=set)  # batch indices still running at the provider
    unknown: set[int] = field(default_factory=set)  # batch indices the provider does not know
    chunks_to_s3: bool = False
    groups_to_s3: bool = True
    poll_results_to_s3: bool = False
    final_merge_problems: dict[str, str] = field(default_factory=dict)  # mirror_error, prune_error
    objects: dict[str, Any] = field(default_factory=dict)  # stands in for the bucket
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def database(self) -> str:
        return f"{self.kind}s"

    def handlers(self) -> dict[str, Any]:
        return {"embedding-list-pending": self.list_pending,
                f"embedding-{self.kind}-poll": self.poll,
                "embedding-split-chunks": self.split_chunks,
                "embedding-vector-compact": self.vector_compact,
                "embedding-create-chunk-groups": self.chunk_groups,
                "embedding-mark-batches-complete": self.mark_complete}

    def _seen(self, step: str, event: dict[str, Any]) -> None:
        self.events.setdefault(step, []).append(event)

    def processed_batch_ids(self) -> list[str]:
        return [f"batch-{i}" for i in range(self.batches) if i not in self.waiting | self.unknown]

    def list_pending(self, event: dict[str, Any]) -> dict[str, Any]:
        self._seen("list_pending", event)
        expect_fields(event, ListPendingEvent)
        parsed = ListPendingEvent.model_validate(event)
        refs = [PendingBatchRef(batch_id=f"batch-{i}", openai_batch_id=f"oa-{i}")
                for i in range(self.batches)]
        manifest = len(refs) > 50
        key = f"poll_manifests/{parsed.execution_id}/manifest.json" if manifest else None
        if key:
            self.objects[key] = refs
        return ListPendingResult(pending_batches=None if manifest else refs,
                                 batch_indices=list(range(len(refs))), use_s3=manifest,
                                 manifest_s3_key=key, manifest_s3_bucket=BUCKET if manifest else None,
                                 execution_id=parsed.execution_id, total_batches=len(refs)
                                 ).model_dump(mode="json")

    def poll(self, event: dict[str, Any]) -> dict[str, Any]:
        self._seen("poll", event)
        expect_fields(event, PollEvent, minus=DIRECT_POLL_FIELDS)
        parsed = PollEvent.model_validate(event)
        refs = self.objects[parsed.manifest_s3_key] if parsed.manifest_s3_key else parsed.pending_batches
        ref = refs[parsed.batch_index]
        if parsed.batch_index in self.unknown:
            raise UnknownToyBatchError(f"provider does not know batch {ref.openai_batch_id!r}")
        common = {"batch_id": ref.batch_id, "openai_batch_id": ref.openai_batch_id,
                  "collection": self.database, "database": self.database}
        if parsed.batch_index in self.waiting:
            return PollResult(batch_status="in_progress", action="wait", **common).model_dump(mode="json")
        return PollResult(batch_status="completed", action="process_results",
                          results_count=EMBEDDINGS_PER_BATCH, delta_id=ref.batch_id,
                          delta_key=f"{self.database}/delta/{self.database}/receipt_{self.kind}s/{ref.batch_id}/",
                          embedding_count=EMBEDDINGS_PER_BATCH, storage="s3_delta", **common
                          ).model_dump(mode="json")

    def split_chunks(self, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("operation") == "load_chunks_from_s3":
            self._seen("load_chunks", event)
            expect_fields(event, LoadChunksEvent, extra={"operation"})
            parsed = LoadChunksEvent.model_validate(event)
            stored = self.objects[parsed.chunks_s3_key]
            chunks = [Chunk(chunk_index=c.chunk_index, batch_id=c.batch_id, delta_results=None,
                            chunks_s3_key=parsed.chunks_s3_key, chunks_s3_bucket=BUCKET) for c in stored]
            return {"chunked_data": self._chunked(parsed.batch_id, chunks, parsed.chunks_s3_key)}
        self._seen("split", event)
        expect_fields(event, SplitChunksEvent)
        parsed = SplitChunksEvent.model_validate(event)
        deltas = [DeltaRef(batch_id=r.batch_id, delta_key=r.delta_key, embedding_count=r.embedding_count,
                           database=r.database, collection=r.collection)
                  for r in parsed.poll_results or [] if isinstance(r, PollResult) and r.delta_key]
        chunks = [Chunk(chunk_index=i, batch_id=parsed.batch_id, delta_results=deltas[s:s + CHUNK_SIZE])
                  for i, s in enumerate(range(0, len(deltas), CHUNK_SIZE))]
        if self.chunks_to_s3 and chunks:
            key = f"chunks/{parsed.batch_id}/chunks.json"
            self.objects[key] = chunks
            return {"chunked_data": self._chunked(parsed.batch_id, [], key, total=len(chunks))}
        return {"chunked_data": self._chunked(parsed.batch_id, chunks, None)}

    @staticmethod
    def _chunked(batch_id: str, chunks: list[Chunk], key: str | None, total: int | None = None) -> dict:
        data = ChunkedData(batch_id=batch_id, chunks=chunks,
                           total_chunks=len(chunks) if total is None else total, use_s3=key is not None,
                           chunks_s3_key=key, chunks_s3_bucket=BUCKET if key else None)
        return data.model_dump(mode="json")

    def vector_compact(self, event: dict[str, Any]) -> dict[str, Any]:
        operation = event.get("operation")
        self._seen(operation, event)
        if operation == "process_chunk":
            expect_fields(event, ProcessChunkEvent)
            parsed = ProcessChunkEvent.model_validate(event)
            deltas = parsed.delta_results
            if deltas is None:
                deltas = self.objects[parsed.chunks_s3_key][parsed.chunk_index].delta_results
            key = f"intermediate/{parsed.batch_id}/chunk-{parsed.chunk_index}/"
            total = sum(d.embedding_count for d in deltas)
            return IntermediateRef(intermediate_key=key, total_embeddings=total).model_dump(mode="json")
        if operation == "merge_chunk_group":
            expect_fields(event, MergeChunkGroupEvent, extra={"operation"})
            parsed = MergeChunkGroupEvent.model_validate(event)
            group = parsed.chunk_group
            if group is None:
                group = self.objects[parsed.groups_s3_key][parsed.group_index]
            key = f"intermediate/{parsed.batch_id}-group-{parsed.group_index}/merged/"
            total = sum(r.total_embeddings for r in group)
            return IntermediateRef(intermediate_key=key, total_embeddings=total).model_dump(mode="json")
        assert operation == "final_merge", operation
        expect_fields(event, FinalMergeEvent)
        parsed = FinalMergeEvent.model_validate(event)
        added = sum(r.total_embeddings for r in parsed.chunk_results)
        return {"final_merge_result": FinalMergeOutcome(
            batch_id=parsed.batch_id, database=parsed.database,
            snapshot_key=f"{parsed.database}/snapshot/latest/", snapshot_version="v-0001",
            total_embeddings=added, added_embeddings=added, processing_time_seconds=0.1,
            message="Final merge completed successfully", **self.final_merge_problems
        ).model_dump(mode="json")}

    def chunk_groups(self, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("operation") == "load_groups_from_s3":
            self._seen("load_groups", event)
            expect_fields(event, LoadGroupsEvent, extra={"operation"})
            parsed = LoadGroupsEvent.model_validate(event)
            stored = self.objects[parsed.groups_s3_key]
            groups = [GroupRef(group_index=i, batch_id=parsed.batch_id,
                               groups_s3_key=parsed.groups_s3_key, groups_s3_bucket=BUCKET)
                      for i in range(len(stored))]
            return {"chunk_groups": ChunkGroups(
                batch_id=parsed.batch_id, groups=groups, groups_s3_key=parsed.groups_s3_key,
                groups_s3_bucket=BUCKET, total_groups=len(groups), use_s3=True,
                poll_results_s3_key=parsed.poll_results_s3_key,
                poll_results_s3_bucket=parsed.poll_results_s3_bucket, poll_results=parsed.poll_results
            ).model_dump(mode="json")}
        self._seen("create_groups", event)
        expect_fields(event, CreateChunkGroupsEvent)
        parsed = CreateChunkGroupsEvent.model_validate(event)
        size = parsed.group_size
        groups = [parsed.chunk_results[s:s + size] for s in range(0, len(parsed.chunk_results), size)]
        key = f"chunk_groups/{parsed.batch_id}/groups.json"
        self.objects[key] = groups
        poll_key = f"chunk_groups/{parsed.batch_id}/poll_results.json" if self.poll_results_to_s3 else None
        if poll_key:
            self.objects[poll_key] = parsed.poll_results
        inline = None if self.groups_to_s3 else [
            GroupRef(group_index=i, batch_id=parsed.batch_id, groups_s3_key=key, groups_s3_bucket=BUCKET,
                     chunk_group=group) for i, group in enumerate(groups)]
        return {"chunk_groups": ChunkGroups(
            batch_id=parsed.batch_id, groups=inline, groups_s3_key=key, groups_s3_bucket=BUCKET,
            total_groups=len(groups), use_s3=self.groups_to_s3, poll_results_s3_key=poll_key,
            poll_results_s3_bucket=BUCKET if poll_key else None,
            poll_results=None if poll_key else parsed.poll_results).model_dump(mode="json")}

    def mark_complete(self, event: dict[str, Any]) -> dict[str, Any]:
        self._seen("mark_complete", event)
        expect_fields(event, MarkCompleteEvent)
        parsed = MarkCompleteEvent.model_validate(event)
        results = parsed.poll_results
        if results is None:
            results = self.objects[parsed.poll_results_s3_key]
        ids = [r.batch_id for r in results if isinstance(r, PollResult) and r.action == "process_results"]
        return {"mark_complete_result": MarkCompleteOutcome(
            batches_marked=len(ids), batch_ids=ids, snapshot_version=parsed.snapshot_version
        ).model_dump(mode="json")}
