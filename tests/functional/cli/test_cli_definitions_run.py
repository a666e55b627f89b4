"""`embedding-ingest definitions run`: any JSONPath definition on the local engine, through the real
command line; its history is read back with get-execution-history and describe-execution."""

from __future__ import annotations

import json

import pytest
from cli_runner import fast_cli

EXIT_EXECUTION_FAILED = 4
FN = "arn:aws:lambda:us-east-1:123456789012:function:"

DEFINITION = {
    "Comment": "Wait + Parallel + Map + Choice",
    "StartAt": "Nap",
    "States": {
        "Nap": {"Type": "Wait", "Seconds": 3600, "Next": "Both"},
        "Both": {"Type": "Parallel", "ResultPath": "$.parallel", "Next": "Route", "Branches": [
            {"StartAt": "Double", "States": {"Double": {
                "Type": "Map", "ItemsPath": "$.numbers", "End": True,
                "ItemProcessor": {"StartAt": "Times2", "States": {
                    "Times2": {"Type": "Task", "Resource": FN + "double", "End": True}}}}}},
            {"StartAt": "Count", "States": {"Count": {
                "Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($.numbers)"}, "End": True}}}]},
        "Route": {"Type": "Choice", "Default": "Few", "Choices": [
            {"Variable": "$.parallel[1].n", "NumericGreaterThan": 2, "Next": "Many"}]},
        "Many": {"Type": "Pass", "Result": "many", "ResultPath": "$.verdict", "End": True},
        "Few": {"Type": "Pass", "Result": "few", "ResultPath": "$.verdict", "End": True},
    },
}
HANDLERS = '''
def double(event, context):
    if event < 0:
        raise ValueError(f"negative: {event}")
    return event * 2

HANDLERS = {"double": double}
'''


@pytest.fixture
def project(tmp_path):
    """(cli, definition file, env putting the handlers module on the import path)."""
    (tmp_path / "my_handlers.py").write_text(HANDLERS)
    definition = tmp_path / "fan-out.json"
    definition.write_text(json.dumps(DEFINITION))
    return fast_cli(tmp_path), definition, {"PYTHONPATH": str(tmp_path)}


def test_a_definition_with_wait_parallel_map_and_choice_runs_and_its_history_is_kept(project):
    cli, definition, env = project

    done = cli.run("definitions", "run", str(definition), "--input", '{"numbers": [1, 2, 3]}',
                   "--handlers", "my_handlers:HANDLERS", "--name", "fan-1", "--virtual-clock", **env)

    assert json.loads(done.stdout) == {"numbers": [1, 2, 3], "parallel": [[2, 4, 6], {"n": 3}],
                                       "verdict": "many"}
    assert "fan-1 SUCCEEDED" in done.stderr
    events = cli.json("get-execution-history", "fan-1")["events"]
    types = [e["type"] for e in events]
    assert types[:3] == ["ExecutionStarted", "WaitStateEntered", "WaitStateExited"]
    assert events[2]["timestamp"] - events[1]["timestamp"] == 3600  # an hour, in no time
    assert types.count("MapIterationSucceeded") == 3 and "ParallelStateSucceeded" in types
    assert [e["stateEnteredEventDetails"]["name"] for e in events if e["type"] == "ChoiceStateEntered"] \
        == ["Route"]
    described = cli.json("describe-execution", "fan-1")
    assert described["stateMachineArn"].endswith(":stateMachine:fan-out")
    assert described["status"] == "SUCCEEDED"
    assert "summary" not in described  # batches and embeddings mean nothing for this state machine
    table = cli.run("describe-execution", "fan-1")
    assert "SUCCEEDED" in table.stdout and "embeddings" not in table.stdout and "submit" not in table.stderr
    assert "fan-1" in cli.run("get-execution-history", "fan-1").stdout  # the table names the execution


def test_a_failed_execution_exits_4_with_its_error(project):
    cli, definition, env = project

    done = cli.run("definitions", "run", str(definition), "--input", '{"numbers": [1, -2]}',
                   "--handlers", "my_handlers:HANDLERS", "--virtual-clock", code=EXIT_EXECUTION_FAILED, **env)

    assert "FAILED: ValueError" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_a_definition_without_tasks_needs_no_handlers(project, tmp_path):
    cli, _, _ = project
    simple = tmp_path / "simple.json"
    simple.write_text(json.dumps({"StartAt": "P", "States": {"P": {
        "Type": "Pass", "Parameters": {"id.$": "States.Format('order-{}', $.n)"}, "End": True}}}))

    described = cli.json("definitions", "run", str(simple), "--input", '{"n": 7}')

    assert json.loads(described["output"]) == {"id": "order-7"}


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "{}"], "no handler for Task function(s) double"),
    (["--input", "{oops", "--handlers", "my_handlers:HANDLERS"], "--input is not valid JSON"),
    (["--handlers", "my_handlers"], "expected module:mapping"),
    (["--handlers", "no_such_module:HANDLERS"], "cannot import module 'no_such_module'"),
])
def test_wrong_input_gets_a_one_line_error(project, args, message):
    cli, definition, env = project

    done = cli.run("definitions", "run", str(definition), *args, code=2, **env)  # bad input

    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_a_definition_aws_would_reject_is_refused_naming_the_state(project, tmp_path):
    cli, _, _ = project
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"StartAt": "C", "States": {"C": {"Type": "Choice", "Default": "C", "Choices": [
        {"Variable": "$.x", "StringEquals": 1, "Next": "C"}]}}}))

    done = cli.run("definitions", "run", str(bad), code=2)

    assert "state 'C'" in done.stderr and "StringEquals must be a string" in " ".join(done.stderr.split())


def test_a_qualified_function_arn_runs_the_named_function(project, tmp_path):
    # A version or alias after the name (...:function:double:prod) still names the function `double`
    # (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html).
    cli, _, env = project
    qualified = tmp_path / "qualified.json"
    qualified.write_text(json.dumps({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": FN + "double:prod", "End": True}}}))

    done = cli.run("definitions", "run", str(qualified), "--input", "21",
                   "--handlers", "my_handlers:HANDLERS", **env)

    assert json.loads(done.stdout) == 42


def test_a_service_integration_is_refused_for_what_it_is_not_for_a_missing_handler(project, tmp_path):
    cli, _, env = project
    integration = tmp_path / "integration.json"
    integration.write_text(json.dumps({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",  # lambda:invoke runs; SQS does not
        "Parameters": {"QueueUrl": "https://sqs.example/q", "MessageBody.$": "$"},
        "End": True}}}))

    done = cli.run("definitions", "run", str(integration), "--handlers", "my_handlers:HANDLERS",
                   code=2, **env)

    assert "service integration" in done.stderr and "no handler" not in done.stderr


def test_a_handlers_module_that_fails_to_import_gets_a_one_line_error(project, tmp_path):
    cli, definition, env = project
    (tmp_path / "broken_handlers.py").write_text("raise RuntimeError('API_KEY is not set')\n")

    done = cli.run("definitions", "run", str(definition), "--handlers", "broken_handlers:HANDLERS",
                   code=2, **env)

    message = " ".join(done.stderr.split())
    assert "cannot import module 'broken_handlers': RuntimeError: API_KEY is not set" in message
    assert "Traceback" not in done.stderr and "unexpected" not in message
