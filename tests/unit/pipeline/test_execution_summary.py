"""summarize_execution reads what Step Functions reports (DescribeExecution output, history events) and
says what a run did: counts, released items with their reasons, and why nothing was published."""

from __future__ import annotations

import json

import pytest

from embedding_ingest.pipeline.report import aggregate, failed_state, summarize_execution

MACHINE = "arn:aws:states:us-east-1:000000000000:stateMachine:word-ingest"


def _poll(batch: str, status: str, action: str, **fields) -> dict:
    return {"batch_id": batch, "openai_batch_id": f"p-{batch}", "batch_status": status, "action": action,
            "collection": "words", "database": "words", **fields}


def _described(output: dict, status: str = "SUCCEEDED", **fields) -> dict:
    return {"name": "run-1", "stateMachineArn": MACHINE, "status": status, "output": json.dumps(output),
            **fields}


def test_a_publishing_run_counts_deltas_releases_and_marks():
    polls = [_poll("a", "completed", "process_results", delta_key="d/a", embedding_count=8, released_count=2,
                   problem_count=2, first_problem="item X: vector has 3 dimensions, expected 16"),
             _poll("b", "in_progress", "wait"),
             {"batch_index": 2, "action": "poll_failed", "error": {"Error": "States.Timeout"}}]
    output = {"poll_results": polls,
              "final_merge_result": {"snapshot_version": "v9", "added_embeddings": 8, "total_embeddings": 50},
              "mark_complete_result": {"batches_marked": 1}}

    summary = summarize_execution(_described(output), batches_still_active=2)

    assert summary["workflow"] == "word" and summary["batches_listed"] == 3
    assert summary["batches_polled"] == {"completed": 1, "in_progress": 1}
    assert summary["batches_not_polled"] == 1
    assert (summary["deltas_written"], summary["embeddings_published"], summary["published_version"]) == (
        1, 8, "v9")
    assert summary["items_released"] == 2
    assert summary["release_reasons"] == [{"batch_id": "a", "released": 2, "problems": 2,
                                           "first_problem": "item X: vector has 3 dimensions, expected 16"}]
    assert summary["message"] == ("published 8 embeddings as words version v9 (50 in all); 1 batch marked "
                                  "complete; 2 items released for resubmission; 2 batches still active")
    assert summary["next"] == "embedding-ingest start-execution word --until-idle"


def test_a_run_that_published_nothing_names_each_reason():
    polls = [_poll("a", "failed", "batch_failed"), _poll("b", "validating", "wait"),
             _poll("c", "validating", "wait")]

    summary = summarize_execution(_described({"poll_results": polls}))

    assert summary["published"] is False and summary["batches_still_active"] == 2
    assert summary["message"] == (
        "published nothing: 1 batch failed at the provider (their items go back to be resubmitted); "
        "2 batches still in progress at the provider; run again later, or use --until-idle")


def test_a_failed_run_names_the_state_from_its_fail_state():
    events = [{"id": 1, "type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "WordFinalMerge"}},
              {"id": 2, "type": "FailStateEntered",
               "stateEnteredEventDetails": {"name": "WordFinalMergeFailed"}},
              {"id": 3, "type": "ExecutionFailed", "executionFailedEventDetails": {"error": "E"}}]

    summary = summarize_execution(_described({}, status="FAILED", error="ObjectNotFoundError", cause="gone"),
                                  events=events)

    assert failed_state(events) == "WordFinalMerge"
    assert summary["message"] == "failed in WordFinalMerge: ObjectNotFoundError"
    assert summary["next"] == "embedding-ingest get-execution-history run-1 --failed-only"


def test_aggregate_totals_and_the_reason_the_loop_stopped():
    first = summarize_execution(_described({"poll_results": [_poll("a", "in_progress", "wait")]}))
    second = summarize_execution(_described({
        "poll_results": [_poll("a", "completed", "process_results", delta_key="k", embedding_count=4)],
        "final_merge_result": {"snapshot_version": "v2", "added_embeddings": 4, "total_embeddings": 4},
        "mark_complete_result": {"batches_marked": 1}}), batches_still_active=0)

    total = aggregate([first, second], workflow="word", stopped_because="idle", batches_still_active=0)

    assert (total["executions"], total["succeeded"], total["embeddings_published"]) == (2, 2, 4)
    assert total["published_versions"] == ["v2"] and total["next"] is None
    assert total["message"] == ("2 executions: published 4 embeddings (words version v2); "
                                "no word batch is active")


def test_an_aborted_run_says_it_was_stopped_and_to_run_again_not_to_look_for_failures():
    described = {"name": "run-1", "stateMachineArn": MACHINE, "status": "ABORTED"}

    summary = summarize_execution(described, events=[])

    assert summary["message"] == "aborted before it finished; nothing was lost"
    assert summary["next"] == "embedding-ingest start-execution word --until-idle"


@pytest.mark.parametrize(("batches", "held"), [
    (1, "its 1 batch stays active and the next run resumes it"),
    (2, "its 2 batches stay active and the next run resumes them")])
def test_an_aborted_runs_batches_are_counted_in_good_grammar(batches, held):
    listed = {"batch_indices": list(range(batches)),
              "pending_batches": [{"batch_id": f"b-{n}"} for n in range(batches)]}
    events = [{"id": 1, "type": "TaskSucceeded", "taskSucceededEventDetails": {"output": json.dumps(listed)}}]
    described = {"name": "run-1", "stateMachineArn": MACHINE, "status": "ABORTED"}

    summary = summarize_execution(described, events=events)

    assert summary["message"] == f"aborted before it finished; {held}"


def test_a_run_that_only_deleted_says_how_many_it_deleted():
    deleting = summarize_execution(_described({
        "final_merge_result": {"snapshot_version": "v3", "added_embeddings": 0, "deleted_embeddings": 76,
                               "total_embeddings": 1819},
        "mark_complete_result": {"batches_marked": 1}}), batches_still_active=0)

    total = aggregate([deleting], workflow="line", stopped_because="idle", batches_still_active=0)

    assert total["message"] == ("1 execution: published 0 embeddings, 76 deleted (lines version v3); "
                                "no line batch is active")
