"""The web console's API with --backend aws reads the deployed state machines through the Step Functions
API (moto's server): executions, one execution, its history and the definition it runs - and refuses
actions, since on AWS the console is read-only."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from embedding_ingest import backends
from embedding_ingest.aws.stepfunctions import StepFunctionsBackend
from embedding_ingest.config import Settings
from embedding_ingest.console.api import Console
from embedding_ingest.console.app import create_app
from embedding_ingest.console.sources import StepFunctionsSource


@pytest.fixture
def client(deployed):
    sfn, arns = deployed
    sfn.start_execution(stateMachineArn=arns["line"], name="aws-run-1", input='{"note": "<b>x</b>"}')
    settings = Settings()
    source = StepFunctionsSource(StepFunctionsBackend(backends.aws_client("stepfunctions", settings)))
    console = Console(source=source, ledger=backends.build_ledger(settings),
                      objects=backends.build_object_store(settings), settings=settings,
                      allow_actions=True, token="t")
    with TestClient(create_app(console), base_url="http://127.0.0.1") as client:
        yield client


def test_executions_history_and_graph_come_from_step_functions(client):
    listed = client.get("/api/executions").json()["executions"]
    assert [(e["name"], e["workflow"]) for e in listed] == [("aws-run-1", "line")]
    assert client.get("/api/executions?workflow=word").json()["executions"] == []

    described = client.get("/api/executions/aws-run-1").json()
    assert described["input"] == '{"note": "<b>x</b>"}'
    assert described["workflow"] == "line"
    history = client.get("/api/executions/aws-run-1/history").json()["events"]
    assert history[0]["type"] == "ExecutionStarted"
    # The graph is drawn from the definition the execution runs (DescribeStateMachineForExecution).
    graph = client.get("/api/executions/aws-run-1/graph").json()["graph"]
    assert {"ListPendingBatches", "PollBatches", "FinalMerge"} <= {n["name"] for n in graph["nodes"]}
    assert client.get("/api/executions/nope").status_code == 404


def test_actions_are_refused_on_aws(client):
    started = client.post("/api/actions/start-execution", json={"workflow": "line"},
                          headers={"X-Console-Token": "t"})
    assert started.status_code == 403 and "read-only" in started.json()["message"]
