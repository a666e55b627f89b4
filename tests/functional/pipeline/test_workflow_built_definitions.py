"""The REAL line/word definitions from the builder, run on the engine with contract-speaking toy
Lambdas: inline, S3-offloaded and hierarchical (>4 chunks) paths, no work, and failures."""

from __future__ import annotations

import json

import pytest
from sleep_recorder import SleepRecorder
from workflow_contract_lambdas import EMBEDDINGS_PER_BATCH, ContractLambdas
from workflow_toys import FailingThenOk

from asl_local.clock import RealClock
from asl_local.errors import StatesFailure
from asl_local.invokers import InProcessInvoker
from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
from embedding_ingest.pipeline.engine_store import WorkflowEngine, describe_execution
from embedding_ingest.pipeline.report import summarize_execution
from embedding_ingest.stores.exceptions import StoreUnavailableError
from embedding_ingest.stores.records import ExecutionStatus
from embedding_ingest.stores.sqlite_ledger import SqliteLedger


def run(tmp_path, lambdas: ContractLambdas, name: str = "run-1", handlers=None):
    definition = build_definition(lambdas.kind, local_resource_arn)
    ledger, sleep = SqliteLedger(tmp_path / "ledger.sqlite3"), SleepRecorder()
    engine = WorkflowEngine(ledger, InProcessInvoker(handlers or lambdas.handlers()),
                            clock=RealClock(sleep_function=sleep))
    record = engine.start_execution(lambdas.kind, definition, name, {})
    events = ledger.get_events(record.execution_arn)
    top_level = set(definition["States"])
    visited = [e.details["name"] for e in events
               if e.type.endswith("StateEntered") and e.details["name"] in top_level]
    return record, visited, sleep


def assert_everything_published(record, lambdas: ContractLambdas) -> dict:
    assert record.status is ExecutionStatus.SUCCEEDED, (record.error, record.cause)
    output = json.loads(record.output)
    processed = lambdas.processed_batch_ids()
    final = output["final_merge_result"]
    assert final["total_embeddings"] == EMBEDDINGS_PER_BATCH * len(processed)  # nothing lost in merges
    assert final["snapshot_key"] == f"{lambdas.database}/snapshot/latest/"
    assert output["mark_complete_result"]["batch_ids"] == processed
    assert output["mark_complete_result"]["snapshot_version"] == final["snapshot_version"]
    assert lambdas.events["mark_complete"][0]["database"] == lambdas.database
    return output


def test_inline_run_with_few_chunks_goes_straight_to_the_final_merge(tmp_path):
    lambdas = ContractLambdas(batches=3)

    record, visited, _ = run(tmp_path, lambdas)

    assert_everything_published(record, lambdas)
    assert visited == ["ListPendingBatches", "CheckPendingBatches", "NormalizePendingBatches", "PollBatches",
                       "SplitIntoChunks", "CheckChunksSource", "NormalizeChunkData",
                       "ProcessChunksInParallel", "GroupChunksForMerge", "CheckChunkGroupCount",
                       "PrepareFinalMerge", "FinalMerge", "MarkBatchesComplete", "IngestionSucceeded"]
    assert lambdas.events["list_pending"][0] == {"batch_type": "line", "execution_id": "run-1",
                                                 "max_batches": None}
    assert [e["batch_index"] for e in lambdas.events["poll"]] != []
    assert all(e["skip_sqs_notification"] is True for e in lambdas.events["poll"])


def test_chunks_and_groups_offloaded_to_s3_take_the_load_steps_and_hierarchical_merge(tmp_path):
    lambdas = ContractLambdas(batches=45, chunks_to_s3=True)  # 45 deltas -> 5 chunks (> 4)

    record, visited, _ = run(tmp_path, lambdas)

    assert_everything_published(record, lambdas)
    assert visited[visited.index("CheckChunksSource"):] == [
        "CheckChunksSource", "LoadChunksFromS3", "NormalizeChunkData", "ProcessChunksInParallel",
        "GroupChunksForMerge", "CheckChunkGroupCount", "CreateChunkGroups", "CheckChunkGroupsSource",
        "LoadChunkGroupsFromS3", "MergeChunkGroupsInParallel", "PrepareHierarchicalFinalMerge",
        "FinalMerge", "MarkBatchesComplete", "IngestionSucceeded"]
    assert len(lambdas.events["process_chunk"]) == 5
    assert all(e["delta_results"] is None and e["chunks_s3_key"] for e in lambdas.events["process_chunk"])
    assert [e["group_index"] for e in lambdas.events["merge_chunk_group"]] == [0]


def test_manifest_mode_many_groups_and_poll_results_offloaded(tmp_path):
    # 120 batches (> 50: manifest), 2 still running, 1 unknown -> 117 deltas, 12 chunks, 2 groups.
    lambdas = ContractLambdas(batches=120, waiting={5, 77}, unknown={30}, poll_results_to_s3=True)

    record, visited, _ = run(tmp_path, lambdas)

    output = assert_everything_published(record, lambdas)
    assert all(e["manifest_s3_key"] and e["pending_batches"] is None for e in lambdas.events["poll"])
    assert sorted(e["group_index"] for e in lambdas.events["merge_chunk_group"]) == [0, 1]
    final_event = lambdas.events["final_merge"][0]
    assert final_event["poll_results_s3_key"] == "chunk_groups/run-1/poll_results.json"
    assert len(final_event["chunk_results"]) == 2
    caught = [r for r in output["poll_results"] if r.get("action") == "poll_failed"]
    assert [(r["batch_index"], r["error"]["Error"]) for r in caught] == [(30, "UnknownToyBatchError")]


def test_inline_groups_skip_the_group_load_step(tmp_path):
    lambdas = ContractLambdas(batches=50, groups_to_s3=False)

    record, visited, _ = run(tmp_path, lambdas)

    assert_everything_published(record, lambdas)
    assert "LoadChunkGroupsFromS3" not in visited
    assert visited[visited.index("CheckChunkGroupsSource") + 1] == "MergeChunkGroupsInParallel"
    assert len(lambdas.events["merge_chunk_group"][0]["chunk_group"]) == 5


def test_word_workflow_uses_word_names_poll_function_and_database(tmp_path):
    lambdas = ContractLambdas(kind="word", batches=12)

    record, visited, _ = run(tmp_path, lambdas)

    assert_everything_published(record, lambdas)
    assert visited[0] == "ListPendingWordBatches" and visited[-3:] == [
        "WordFinalMerge", "MarkWordBatchesComplete", "WordIngestionSucceeded"]
    assert lambdas.events["final_merge"][0]["database"] == "words"
    assert record.execution_arn.endswith(":execution:word-ingest:run-1")


def test_when_every_batch_is_still_running_nothing_is_merged_or_marked(tmp_path):
    lambdas = ContractLambdas(batches=2, waiting={0, 1})

    record, visited, _ = run(tmp_path, lambdas)

    assert record.status is ExecutionStatus.SUCCEEDED
    assert visited[-2:] == ["CheckChunksSource", "NoChunksToProcess"]
    assert "mark_complete" not in lambdas.events and "final_merge" not in lambdas.events


def test_no_pending_batches_ends_right_after_listing(tmp_path):
    lambdas = ContractLambdas(batches=0)

    record, visited, _ = run(tmp_path, lambdas)

    assert (record.status, visited) == (
        ExecutionStatus.SUCCEEDED, ["ListPendingBatches", "CheckPendingBatches", "NoPendingBatches"])


def test_a_failing_final_merge_fails_the_run_and_marks_nothing(tmp_path):
    lambdas = ContractLambdas(batches=3)
    handlers = lambdas.handlers()

    def compact(event):
        if event["operation"] == "final_merge":
            raise StatesFailure("never", "used")  # any exception class: its name is the error
        return lambdas.vector_compact(event)

    handlers["embedding-vector-compact"] = compact
    record, visited, _ = run(tmp_path, lambdas, handlers=handlers)

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "StatesFailure")
    assert visited[-2:] == ["FinalMerge", "FinalMergeFailed"]
    assert "mark_complete" not in lambdas.events


def test_a_transient_project_error_is_retried_by_the_built_definition(tmp_path):
    lambdas = ContractLambdas(batches=3)
    handlers = lambdas.handlers()
    busy = FailingThenOk(StoreUnavailableError("S3 503 SlowDown"), StoreUnavailableError("S3 503 SlowDown"))

    def compact(event):
        if event["operation"] == "final_merge" and busy.failures:
            busy(event)
        return lambdas.vector_compact(event)

    handlers["embedding-vector-compact"] = compact
    record, _, sleep = run(tmp_path, lambdas, handlers=handlers)

    assert_everything_published(record, lambdas)
    assert len(sleep.delays) == 2
    assert all(0 <= delay <= cap for delay, cap in zip(sleep.delays, [2, 4], strict=True))  # full jitter


@pytest.mark.parametrize("kind", ["line", "word"])
def test_final_state_data_keeps_final_merge_result_and_mark_complete_result(tmp_path, kind):
    lambdas = ContractLambdas(kind=kind, batches=41)  # 5 chunks: the hierarchical path

    record, _, _ = run(tmp_path, lambdas)

    output = assert_everything_published(record, lambdas)
    assert {"final_merge_result", "mark_complete_result", "poll_results"} <= set(output)


def test_what_failed_after_the_publish_reaches_the_execution_summary(tmp_path):
    problems = {"mirror_error": "could not write lines/snapshot/latest/pointer.json: PermissionError: denied",
                "prune_error": "pruning lines after publish failed: PermissionError: denied"}
    lambdas = ContractLambdas(batches=3, final_merge_problems=problems)

    record, _, _ = run(tmp_path, lambdas)

    output = assert_everything_published(record, lambdas)
    assert {key: output["final_merge_result"][key] for key in problems} == problems
    summary = summarize_execution(describe_execution(record))
    assert summary["published"] and {key: summary[key] for key in problems} == problems
    assert summary["message"].endswith(f"; {problems['mirror_error']}; {problems['prune_error']}")
    clean = summarize_execution(describe_execution(run(tmp_path / "clean", ContractLambdas(batches=3))[0]))
    assert (clean["mirror_error"], clean["prune_error"]) == (None, None)
    assert clean["message"] == summary["message"].split("; could not write")[0]
