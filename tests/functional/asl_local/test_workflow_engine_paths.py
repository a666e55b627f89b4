"""Path processing, Choice rules and the context object, run on the engine with a real SQLite ledger."""

from __future__ import annotations

import json

import pytest
from workflow_toys import add, fixture, make_engine

from asl_local.store import ExecutionStatus


def test_pass_states_apply_input_path_parameters_result_path_and_output_path():
    engine, _, _ = make_engine({})
    order = {"id": "o-1", "customer": {"name": "Ada"},
             "items": [{"sku": "A1"}, {"sku": "B2"}, {"sku": "C3"}]}

    record = engine.start_execution("line", fixture("pass_paths"), "paths", {"order": order, "keep": 1})

    assert record.status is ExecutionStatus.SUCCEEDED
    assert json.loads(record.output) == {
        "id": "o-1",
        "first_item": "A1",
        "skus": ["A1", "B2", "C3"],
        "label": "order o-1 has 3 items",
        "fixed": {"nested": "Ada", "literal": 7},
        "review": {"status": "checked"},
    }


def test_task_gets_its_parameters_and_result_selector_shapes_what_is_kept():
    engine, _, _ = make_engine({"add": add})

    record = engine.start_execution("line", fixture("task_paths"), "task",
                                    {"numbers": {"left": 2, "right": 5, "noise": True}, "other": "x"})

    assert record.status is ExecutionStatus.SUCCEEDED
    assert json.loads(record.output) == {
        "left": 2, "right": 5, "noise": True,
        "result": {"total": 7, "seen": ["a", "b", "label"]},
    }


@pytest.mark.parametrize(("data", "branch"), [
    ({"count": 0, "use_s3": True, "kind": "line"}, "empty"),
    ({"count": 5, "use_s3": True, "kind": "line"}, "big-from-s3"),
    ({"count": 5, "use_s3": False, "kind": "line"}, "big"),
    ({"count": 4.5, "use_s3": False, "kind": "line"}, "big"),
    ({"count": 4, "use_s3": True}, "no-kind"),
    ({"count": 4, "use_s3": True, "kind": "word"}, "word"),
    ({"count": 4, "use_s3": True, "kind": "line"}, "other"),
    ({"count": "5", "use_s3": "true", "kind": 3}, "other"),  # wrong types never match
])
def test_choice_takes_the_first_matching_rule(data, branch):
    engine, _, _ = make_engine({})

    record = engine.start_execution("line", fixture("choice_rules"), "choice", data)

    assert json.loads(record.output) == branch


def test_choice_without_match_or_default_fails_with_no_choice_matched():
    engine, _, _ = make_engine({})

    record = engine.start_execution("line", fixture("choice_no_default"), "nomatch", {"count": 1})

    assert record.status is ExecutionStatus.FAILED
    assert record.error == "States.NoChoiceMatched"
    assert "Route" in record.cause


def test_choice_on_a_missing_variable_is_a_runtime_error():
    engine, _, _ = make_engine({})

    record = engine.start_execution("line", fixture("choice_no_default"), "novar", {"other": 1})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.Runtime")
    assert "$.count" in record.cause


def test_context_object_exposes_execution_state_and_map_item():
    engine, _, _ = make_engine({})

    record = engine.start_execution("word-ingest", fixture("context_object"), "ctx-run",
                                    {"letters": ["x", "y"]})

    output = json.loads(record.output)
    assert output["name"] == "ctx-run"
    assert output["id"] == record.execution_arn
    assert output["id"] == "arn:aws:states:us-east-1:123456789012:execution:word-ingest:ctx-run"
    assert output["input"] == {"letters": ["x", "y"]}
    assert output["started"].endswith("Z")
    assert output["state"] == "Describe"
    assert output["machine"] == "word-ingest"
    assert output["items"] == [{"at": 0, "letter": "x", "run": "ctx-run"},
                               {"at": 1, "letter": "y", "run": "ctx-run"}]


def test_a_missing_parameter_path_fails_the_run_even_with_a_catch_all():
    engine, _, _ = make_engine({"add": add})

    record = engine.start_execution("line", fixture("missing_path"), "missing", {"left": 1})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.Runtime")
    assert "The JSONPath '$.absent' specified for the field 'b.$' could not be found" in record.cause
