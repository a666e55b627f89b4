"""The monitoring verbs with --backend aws talk to the real Step Functions API (moto's server)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from embedding_ingest.cli.app import app


def run(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--backend", "aws", "--output", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_start_describe_list_and_history_use_the_deployed_state_machine(deployed):
    sfn, arns = deployed
    started = run("start-execution", "line", "--name", "run-1", "--no-wait")
    assert started["executionArn"].endswith(":run-1")
    assert started["stateMachineArn"] == arns["line"]
    assert started["status"] == "RUNNING"

    described = run("describe-execution", "run-1")
    assert described["executionArn"] == started["executionArn"]
    assert isinstance(described["startDate"], float)  # datetimes become epoch seconds, as locally

    listed = run("list-executions", "--workflow", "line")
    assert [e["name"] for e in listed["executions"]] == ["run-1"]
    assert run("list-executions", "--workflow", "word")["executions"] == []

    history = run("get-execution-history", "run-1", "--workflow", "line")
    assert history["events"][0]["type"] == "ExecutionStarted"


def test_an_unknown_execution_is_a_clear_error(deployed):
    result = CliRunner().invoke(app, ["describe-execution", "nope", "--backend", "aws", "--output", "json"])
    assert result.exit_code == 2  # a name that does not exist is bad input
    assert "ExecutionDoesNotExist" in json.loads(result.stdout)["message"]


def test_an_execution_started_on_aws_leaves_no_local_workspace_behind(deployed, tmp_path):
    started = run("start-execution", "word", "--name", "run-2", "--no-wait")

    assert started["status"] == "RUNNING" and started["summary"]["next"] == \
        "embedding-ingest describe-execution run-2 --backend aws"
    assert not (tmp_path / "ledger.sqlite3").exists()  # the run loop opens the ledger only when needed
