"""The built definitions: valid ASL (statelint), the reference's names, concurrency, paths and error
handling on every Task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asl_local.engine import compile_definition
from embedding_ingest.aws.function_table import BY_NAME
from embedding_ingest.config import LOCK_LEASE_MAX_SECONDS, Settings
from embedding_ingest.pipeline.definitions import (
    VECTOR_COMPACT,
    build_definition,
    local_resource_arn,
    render_definition,
)
from embedding_ingest.pipeline.policies import (
    configuration_error_names,
    retry_policy,
    transient_error_names,
)
from embedding_ingest.steps.lease import HEARTBEATS_PER_LEASE, LONGEST_MERGE_SECONDS

STATELINT = Path(sys.executable).parent / "statelint"


def all_states(definition: dict) -> dict[str, dict]:
    """Every state, including those inside Map item processors."""
    found = {}
    for name, state in definition["States"].items():
        found[name] = state
        if state["Type"] == "Map":
            found.update(all_states(state["ItemProcessor"]))
    return found


@pytest.mark.parametrize("kind", ["line", "word"])
def test_definitions_pass_statelint_and_the_engine_accepts_them(tmp_path, kind):
    path = tmp_path / f"{kind}.json"
    path.write_text(render_definition(kind))

    linted = subprocess.run([str(STATELINT), str(path)], capture_output=True, text=True, check=False)

    assert linted.returncode == 0, linted.stdout + linted.stderr
    compile_definition(json.loads(path.read_text()))


def test_line_definition_follows_the_reference_flow():
    states = build_definition("line", local_resource_arn)["States"]

    assert states["ListPendingBatches"]["Parameters"] == {
        "FunctionName": local_resource_arn("embedding-list-pending"),
        "Payload": {"batch_type": "line", "execution_id.$": "$$.Execution.Name", "max_batches": None}}
    assert states["CheckPendingBatches"]["Choices"][0] == {
        "Variable": "$.total_batches", "NumericGreaterThan": 0, "Next": "NormalizePendingBatches"}
    assert states[states["CheckPendingBatches"]["Default"]]["Type"] == "Succeed"
    poll = states["PollBatches"]
    assert (poll["ItemsPath"], poll["MaxConcurrency"], poll["ResultPath"]) == ("$.batch_indices", 50,
                                                                               "$.poll_results")
    assert poll["ItemSelector"]["batch_index.$"] == "$$.Map.Item.Value"
    assert poll["ItemSelector"]["skip_sqs_notification"] is True
    chunks = states["ProcessChunksInParallel"]
    assert (chunks["ItemsPath"], chunks["MaxConcurrency"], chunks["ResultPath"]) == (
        "$.chunked_data.chunks", 10, "$.chunk_results")
    groups = states["MergeChunkGroupsInParallel"]
    assert (groups["ItemsPath"], groups["MaxConcurrency"], groups["ResultPath"]) == (
        "$.chunk_groups.groups", 6, "$.merged_groups")
    assert states["CheckChunkGroupCount"]["Choices"] == [
        {"Variable": "$.total_chunks", "NumericGreaterThan": 4, "Next": "CreateChunkGroups"}]
    assert states["CheckChunkGroupCount"]["Default"] == "PrepareFinalMerge"
    assert states["CheckChunksSource"]["Default"] == "NormalizeChunkData"
    assert states["FinalMerge"]["Parameters"]["Payload"]["database"] == "lines"
    assert states["FinalMerge"]["ResultPath"] == "$.final_merge_result"
    assert states["MarkBatchesComplete"]["Parameters"]["Payload"]["snapshot_version.$"] == (
        "$.final_merge_result.snapshot_version")
    # its log lines carry the execution (the runbook's MarkBatchesComplete log filter)
    assert states["MarkBatchesComplete"]["Parameters"]["Payload"]["execution_id.$"] == "$$.Execution.Name"
    assert states["MarkBatchesComplete"]["ResultPath"] == "$.mark_complete_result"


def test_word_definition_differs_only_in_names_poll_function_and_database():
    line = build_definition("line", local_resource_arn)
    word = build_definition("word", local_resource_arn)

    assert word["StartAt"] == "ListPendingWordBatches"
    for name in ("PollWordBatches", "SplitWordIntoChunks", "CheckWordChunksSource", "LoadWordChunksFromS3",
                 "NormalizeWordChunkData", "ProcessWordChunksInParallel", "CheckWordChunkGroupCount",
                 "CheckWordChunkGroupsSource", "LoadWordChunkGroupsFromS3",
                 "PrepareWordHierarchicalFinalMerge", "WordFinalMerge", "MarkWordBatchesComplete"):
        assert name in word["States"]
    assert len(word["States"]) == len(line["States"])
    poll_task = word["States"]["PollWordBatches"]["ItemProcessor"]["States"]["PollWordBatch"]
    assert poll_task["Parameters"]["FunctionName"].endswith(":function:embedding-word-poll")
    assert word["States"]["WordFinalMerge"]["Parameters"]["Payload"]["database"] == "words"
    assert word["States"]["MarkWordBatchesComplete"]["Parameters"]["Payload"]["database"] == "words"


@pytest.mark.parametrize("kind", ["line", "word"])
def test_every_task_retries_lambda_and_transient_errors_and_catches_to_a_fail_state(kind):
    definition = build_definition(kind, local_resource_arn)
    states = all_states(definition)
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}

    assert len(tasks) == 10
    for name, task in tasks.items():
        lambda_retry, crash_retry, lock_retry, transient_retry = task["Retry"]
        # AWS's recommended list for Lambda's own transient errors, with its interval, attempts and rate
        assert lambda_retry["ErrorEquals"] == [
            "Lambda.ClientExecutionTimeoutException", "Lambda.ServiceException", "Lambda.AWSLambdaException",
            "Lambda.SdkClientException", "Lambda.TooManyRequestsException"], name
        assert (lambda_retry["IntervalSeconds"], lambda_retry["MaxAttempts"]) == (2, 6), name
        # A function that died (timeout, out of memory) is retried, but once: it would die the same way
        assert crash_retry["ErrorEquals"] == ["Lambda.Unknown", "Sandbox.Timedout"], name
        assert crash_retry["MaxAttempts"] == 1 and crash_retry["IntervalSeconds"] >= 30, name
        # A busy lock gets fixed waits of its own; every other transient error the common one.
        assert lock_retry["ErrorEquals"] == ["LockNotAcquiredError"], name
        assert (lock_retry["BackoffRate"], lock_retry["JitterStrategy"]) == (1.0, "NONE"), name
        assert lock_retry["MaxAttempts"] > transient_retry["MaxAttempts"], name
        assert set(transient_retry["ErrorEquals"]) | {"LockNotAcquiredError"} == set(transient_error_names())
        for retry in (lambda_retry, transient_retry):
            assert (retry["BackoffRate"], retry["JitterStrategy"]) == (2.0, "FULL")
        if name.startswith("Poll"):  # a misconfiguration stops the run: no batch can get past it
            config, catch = task["Catch"]
            assert config["ErrorEquals"] == list(configuration_error_names())
            assert {"ConfigurationError", "SecretNotFoundError"} <= set(config["ErrorEquals"])
            assert states[config["Next"]]["Type"] == "Fail"
        else:
            [catch] = task["Catch"]
        assert (catch["ErrorEquals"], catch["ResultPath"]) == (["States.ALL"], "$.error")
        target = states[catch["Next"]]
        if name.startswith("Poll"):  # one batch failing to poll must not stop the others
            assert target["Type"] == "Pass"
            assert target["Parameters"] == {"batch_index.$": "$.batch_index", "action": "poll_failed",
                                            "error.$": "$.error"}
        else:
            assert target["Type"] == "Fail"
            assert (target["ErrorPath"], target["CausePath"]) == ("$.error.Error", "$.error.Cause")


def test_the_lock_wait_outlasts_the_longest_merge_plus_one_lease_and_one_heartbeat():
    """A final merge finding the lock busy just as another's 900 s merge began, whose holder then died at
    its end, must still be waiting when the dead lease may be taken over (one lease unchanged, seen at
    most one look after the last heartbeat)."""
    (lock_wait,) = [r for r in retry_policy() if r["ErrorEquals"] == ["LockNotAcquiredError"]]
    waited = lock_wait["IntervalSeconds"] * lock_wait["MaxAttempts"]  # fixed waits: no backoff, no jitter

    assert LONGEST_MERGE_SECONDS == BY_NAME[VECTOR_COMPACT].timeout_s == 900
    heartbeat = LOCK_LEASE_MAX_SECONDS / HEARTBEATS_PER_LEASE
    assert Settings().lock_ttl_seconds <= LOCK_LEASE_MAX_SECONDS
    assert lock_wait["IntervalSeconds"] <= heartbeat  # a live holder changes its lease between two looks
    assert waited >= LONGEST_MERGE_SECONDS + LOCK_LEASE_MAX_SECONDS + heartbeat


def test_transient_error_names_cover_every_transient_class_in_the_project():
    names = transient_error_names()

    for expected in ("TransientError", "LockNotAcquiredError", "StoreUnavailableError",
                     "ProviderTransientError", "PointerConflictError", "StaleFencingTokenError"):
        assert expected in names
    assert "InvalidInputError" not in names and "TerminalError" not in names


def test_function_names_come_from_resource_for_and_max_batches_is_passed():
    definition = build_definition("line", lambda name: f"local:{name}", max_batches=250)
    tasks = [s for s in all_states(definition).values() if s["Type"] == "Task"]

    assert {task["Resource"] for task in tasks} == {"arn:aws:states:::lambda:invoke"}
    assert {task["Parameters"]["FunctionName"] for task in tasks} == {
        "local:embedding-list-pending", "local:embedding-line-poll", "local:embedding-split-chunks",
        "local:embedding-vector-compact", "local:embedding-create-chunk-groups",
        "local:embedding-mark-batches-complete"}
    assert definition["States"]["ListPendingBatches"]["Parameters"]["Payload"]["max_batches"] == 250


@pytest.mark.parametrize("kind", ["line", "word"])
def test_every_step_hands_on_the_functions_result_not_invokes_response(kind):
    """lambda:invoke's result is Invoke's response: a ResultSelector reads under $.Payload, and a step
    without one keeps only the Payload (OutputPath, never after a ResultPath other than $)."""
    for name, task in all_states(build_definition(kind, local_resource_arn)).items():
        if task["Type"] != "Task":
            continue
        payload = task["Parameters"].get("Payload", task["Parameters"].get("Payload.$"))
        assert payload is not None, name
        if "ResultSelector" in task:
            assert all(path.startswith("$.Payload.") for path in task["ResultSelector"].values()), name
            assert "OutputPath" not in task, name
        else:
            assert (task["ResultPath"], task["OutputPath"]) == ("$", "$.Payload"), name


def test_render_definition_uses_local_lambda_arns():
    rendered = json.loads(render_definition("word"))

    task = rendered["States"]["ListPendingWordBatches"]
    assert task["Parameters"]["FunctionName"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:embedding-list-pending")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="'receipt'"):
        build_definition("receipt", local_resource_arn)
