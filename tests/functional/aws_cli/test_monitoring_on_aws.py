"""The monitoring verbs with --backend aws talk to the real Step Functions API (moto's server)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from embedding_ingest.cli import app
from embedding_ingest.workflow.builder import build_definition

ROLE = "arn:aws:iam::123456789012:role/sfn"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function"


@pytest.fixture
def deployed(moto_endpoint, monkeypatch, tmp_path):
    """Both state machines created from the builder, as the template deploys them."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint.url)
    monkeypatch.setenv("EMBEDDING_INGEST_HOME", str(tmp_path))
    sfn = moto_endpoint.client("stepfunctions")
    arns = {}
    for kind in ("line", "word"):
        definition = build_definition(kind, lambda name: f"{FUNCTION_ARN}:{name}")
        machine = sfn.create_state_machine(name=f"{kind}-ingest-{tmp_path.name}"[:80],
                                           definition=json.dumps(definition), roleArn=ROLE)
        arns[kind] = machine["stateMachineArn"]
        monkeypatch.setenv(f"{kind.upper()}_STATE_MACHINE_ARN", arns[kind])
    return sfn, arns


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
    assert result.exit_code == 1
    assert "ExecutionDoesNotExist" in json.loads(result.stdout)["message"]
