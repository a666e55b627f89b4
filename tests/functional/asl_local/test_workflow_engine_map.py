"""Inline Map: concurrency limit, per-item input, per-iteration Catch, failure of one iteration."""

from __future__ import annotations

import json

import pytest
from workflow_toys import ConcurrencyProbe, ToyInputError, fixture, make_engine

from asl_local.store import ExecutionStatus


@pytest.mark.parametrize("jobs", [12, 7])
def test_map_runs_at_most_max_concurrency_iterations_at_once_and_keeps_item_order(jobs):
    probe = ConcurrencyProbe(limit=3, total=jobs)
    engine, _, _ = make_engine({"probe": probe})

    record = engine.start_execution("line", fixture("map_concurrency"), "fan",
                                    {"run_id": "r1", "jobs": [f"job-{i}" for i in range(jobs)]})

    assert record.status is ExecutionStatus.SUCCEEDED
    assert probe.max_in_flight == 3
    assert json.loads(record.output)["results"] == [{"done": i} for i in range(jobs)]
    assert sorted(probe.inputs, key=lambda p: p["index"]) == [
        {"index": i, "job": f"job-{i}", "run": "r1"} for i in range(jobs)]


def test_map_over_no_items_yields_an_empty_list():
    engine, _, _ = make_engine({"probe": ConcurrencyProbe(limit=3, total=0)})

    record = engine.start_execution("line", fixture("map_concurrency"), "none", {"run_id": "r", "jobs": []})

    assert json.loads(record.output)["results"] == []


def test_map_items_path_must_select_an_array():
    engine, _, _ = make_engine({"probe": ConcurrencyProbe(limit=3, total=1)})

    record = engine.start_execution("line", fixture("map_concurrency"), "notlist", {"run_id": "r", "jobs": 5})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.Runtime")
    assert "FanOut" in record.cause


def test_poll_catch_pattern_turns_one_failed_batch_into_data_and_keeps_the_others():
    def poll(event):
        batch = event["pending_batches"][event["batch_index"]]
        if batch == "b-2":
            raise ToyInputError(f"provider does not know batch {batch}")
        return {"batch_id": batch, "action": "process_results"}

    engine, _, _ = make_engine({"poll": poll})
    batches = [f"b-{i}" for i in range(5)]

    record = engine.start_execution("line", fixture("poll_catch"), "polls",
                                    {"pending_batches": batches, "batch_indices": list(range(5))})

    assert record.status is ExecutionStatus.SUCCEEDED
    results = json.loads(record.output)["poll_results"]
    assert [r.get("batch_id") for r in results] == ["b-0", "b-1", None, "b-3", "b-4"]
    failed = results[2]
    assert (failed["batch_index"], failed["action"], failed["error"]["Error"]) == (
        2, "poll_failed", "ToyInputError")
    assert "b-2" in json.loads(failed["error"]["Cause"])["errorMessage"]


def test_one_failing_iteration_fails_the_map_and_its_catch_routes_to_fail():
    calls = []

    def picky(job):
        calls.append(job)
        if job == "bad":
            raise ToyInputError("job 'bad' is malformed")
        return job

    engine, ledger, _ = make_engine({"picky": picky})

    record = engine.start_execution("line", fixture("map_failure"), "mapfail",
                                    {"jobs": ["a", "bad", "c", "d"]})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "FanOutFailed")
    assert "job 'bad' is malformed" in record.cause
    assert calls == ["a", "bad"]  # MaxConcurrency 1: nothing starts after the failure
    types = [e.type for e in ledger.get_events(record.execution_arn)]
    assert "MapIterationFailed" in types and "MapStateFailed" in types
