"""Every Lambda entrypoint run the way Lambda runs the image: `python -m awslambdaric <handler>` (the real
runtime interface client, the image's ENTRYPOINT) in its own process, fed by a Lambda Runtime API
server (tests/support/lambda_runtime_api.py), with S3, DynamoDB, Secrets Manager and Step Functions on
moto's server and OpenAI on the fake server.

The state machines' definitions drive the step containers through the local engine, so each step gets
exactly the event Step Functions would send, and a failure comes back as Lambda reports it
(errorType/errorMessage), which the definitions' Retry and Catch must match by errorType."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lambda_runtime_api import RuntimeApi, lambda_container
from moto_server import MotoEndpoint, unique_name

from asl_local.clock import RealClock
from asl_local.engine.lambda_invoke import function_name_in
from asl_local.errors import RemoteTaskError
from asl_local.invokers import function_name_of
from embedding_ingest.aws.deploy.template import build_template
from embedding_ingest.aws.function_table import ALL_FUNCTIONS, BY_NAME
from embedding_ingest.pipeline import definitions
from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
from embedding_ingest.pipeline.engine_store import WorkflowEngine
from embedding_ingest.receipts.ids import line_item_id, word_item_id
from embedding_ingest.stores.dynamo_ledger import DynamoLedger
from embedding_ingest.stores.records import EmbeddingItem, EmbeddingStatus, ExecutionStatus, ItemKind
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

pytestmark = pytest.mark.slow

COUNTS = {ItemKind.LINE: 3, ItemKind.WORD: 2}
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused


def _items(kind: ItemKind, count: int) -> list[EmbeddingItem]:
    is_line = kind is ItemKind.LINE
    return [EmbeddingItem(
        item_id=line_item_id("img-ric", 1, n) if is_line else word_item_id("img-ric", 1, n, 0), kind=kind,
        image_id="img-ric", receipt_number=1, line_id=n, word_id=None if is_line else 0, text=f"ITEM {n}",
        embed_text=f"ITEM {n} RM {n}.90", metadata={"line_id": n}) for n in range(count)]


def _schedule_event(logical_id: str, scheduled_time: str) -> dict[str, Any]:
    target = build_template()["Resources"][logical_id]["Properties"]["Target"]
    return json.loads(target["Input"].replace("<aws.scheduler.scheduled-time>", scheduled_time))


class RuntimeApiInvoker:
    """The engine's invoker: each Task goes to its function's container. `first_to` sends the first
    invocation of a function to another container (one that fails)."""

    def __init__(self, containers: dict[str, RuntimeApi],
                 first_to: dict[str, RuntimeApi] | None = None) -> None:
        self.containers = containers
        self.first_to = dict(first_to or {})
        self.errors: list[dict[str, Any]] = []

    def invoke(self, resource: str, payload: dict[str, Any]) -> Any:
        name = function_name_of(resource)
        container = self.first_to.pop(name, None) or self.containers[name]
        answer = container.invoke(payload)
        if answer.ok:
            return answer.body
        self.errors.append(answer.body)
        raise RemoteTaskError(answer.body["errorType"], answer.body["errorMessage"])


def _tasks_of(kind: ItemKind, function_name: str) -> list[dict[str, Any]]:
    found, pending = [], [build_definition(kind.value, local_resource_arn)["States"]]
    while pending:
        for state in pending.pop().values():
            if state["Type"] == "Task" and function_name_in(state["Resource"],
                                                            state.get("Parameters")) == function_name:
                found.append(state)
            for nested in (state.get("ItemProcessor"), state.get("Iterator")):
                if nested:
                    pending.append(nested["States"])
    assert found, function_name
    return found


def _retried(kind: ItemKind, function_name: str) -> set[str]:
    """Error names the definition retries for every Task of this function."""
    per_task = [{name for retry in task.get("Retry", []) for name in retry["ErrorEquals"]}
                for task in _tasks_of(kind, function_name)]
    return set.intersection(*per_task)


def _caught(kind: ItemKind, function_name: str) -> set[str]:
    return {n for t in _tasks_of(kind, function_name) for c in t.get("Catch", []) for n in c["ErrorEquals"]}


@contextlib.contextmanager
def _containers(specs: dict[str, tuple[str, dict[str, str]]], log_dir: Path
                ) -> Iterator[dict[str, RuntimeApi]]:
    """Start every container at once (each pays its imports in parallel)."""
    with contextlib.ExitStack() as stack:
        apis = {name: stack.enter_context(lambda_container(name, handler, env, log_dir=log_dir))
                for name, (handler, env) in specs.items()}
        yield apis


@pytest.fixture
def state_machines(moto_endpoint: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    client = moto_endpoint.client("stepfunctions")
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    arns = {kind: client.create_state_machine(name=unique_name(f"{kind}-ingest"), definition=definition,
                                              roleArn="arn:aws:iam::123456789012:role/x")["stateMachineArn"]
            for kind in ("line", "word")}
    for kind, arn in arns.items():
        monkeypatch.setenv(f"{kind.upper()}_STATE_MACHINE_ARN", arn)
    return arns


def test_every_entrypoint_through_awslambdaric(tmp_path, lambda_env, state_machines, dynamodb_client,
                                               dynamodb_table, monkeypatch):
    ledger = DynamoLedger(dynamodb_client, dynamodb_table)
    for kind, count in COUNTS.items():
        ledger.add_items(_items(kind, count))

    def env(name: str, **extra: str) -> dict[str, str]:
        return {"EMBEDDING_INGEST_HOME": str(tmp_path / "containers" / name), "MAX_ITEMS_PER_BATCH": "1",
                **extra}

    specs = {f.name: (f.command, env(f.name)) for f in ALL_FUNCTIONS}
    # list-pending whose AWS endpoints (its OpenAI key's secret, DynamoDB) cannot be reached, answering
    # at once (no SDK retries)
    unreachable_env = env("unreachable", AWS_ENDPOINT_URL=UNREACHABLE, AWS_MAX_ATTEMPTS="1")
    specs["unreachable-list-pending"] = (BY_NAME["embedding-list-pending"].command, unreachable_env)
    with _containers(specs, tmp_path / "logs") as apis:
        # -- the submit schedule's event: every item claimed and sent as a batch of one
        submitted = apis["embedding-submit"].invoke(_schedule_event("SubmitSchedule", "2026-11-29T16:15:00Z"))
        assert submitted.ok, submitted.body
        nothing_refused = {"refused": 0, "waiting_for_budget": 0}
        assert submitted.body == {kind.value: {"batches": n, "items": n, **nothing_refused}
                                  for kind, n in COUNTS.items()}

        # -- both workflows, every step in its container; chunk groups forced so that step runs too
        monkeypatch.setattr(definitions, "GROUPING_THRESHOLD_CHUNKS", 0)
        invoker = RuntimeApiInvoker(apis,
                                    first_to={"embedding-list-pending": apis["unreachable-list-pending"]})
        engine = WorkflowEngine(SqliteLedger(tmp_path / "engine.sqlite3"), invoker,
                                clock=RealClock(sleep_function=lambda _s: None))
        records = {kind: engine.start_execution(kind.value, build_definition(kind.value, local_resource_arn),
                                                f"{kind.value}-ric-1", {}) for kind in COUNTS}
        for kind, record in records.items():
            assert record.status is ExecutionStatus.SUCCEEDED, (kind, record.error, record.cause)
            assert ledger.count_items(kind)[EmbeddingStatus.SUCCESS] == COUNTS[kind]
        # the unreachable table came back as Lambda reports an error, and the Retry that matched it by
        # errorType ran list-pending again in the working container
        (unreachable,) = invoker.errors
        assert unreachable["errorType"] in _retried(ItemKind.LINE, "embedding-list-pending")
        assert "EndpointConnectionError" in unreachable["errorMessage"] and unreachable["stackTrace"]
        history = [e.type for e in engine.ledger.get_events(records[ItemKind.LINE].execution_arn)]
        assert history.count("TaskFailed") == 1 and "ExecutionSucceeded" in history
        # every step container answered at least one invocation
        for name in BY_NAME:
            assert apis[name].answered, f"{name} was never invoked"

        # -- a step given an event no state sends: a terminal error, caught by States.ALL, not retried
        wrong = apis["embedding-vector-compact"].invoke({"operation": "defragment"})
        assert not wrong.ok and wrong.error_type == "UnknownOperationError"
        assert "defragment" in wrong.body["errorMessage"]
        assert wrong.error_type not in _retried(ItemKind.LINE, "embedding-vector-compact")
        assert _caught(ItemKind.LINE, "embedding-vector-compact") == {"States.ALL"}

        # -- the execution schedules' events: one execution per slot
        slot = _schedule_event("LineExecutionSchedule", "2026-11-29T16:15:00Z")
        started = apis["embedding-start-execution"].invoke(slot)
        assert started.ok and started.body["started"], started.body
        assert started.body["executionArn"].endswith(":line-20261129T161500Z")
        bad = apis["embedding-start-execution"].invoke({**slot, "scheduled_time": "yesterday"})
        assert bad.error_type == "InvalidInputError" and "'scheduled_time'" in bad.body["errorMessage"]

        # -- the logs are the package's JSON lines, on the container's stdout
        log = (tmp_path / "logs" / "embedding-submit.log").read_text()
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert any(line.get("function") == "embedding-submit" for line in lines)


def test_a_handler_that_cannot_be_imported_is_an_init_error(tmp_path, lambda_env):
    with lambda_container("missing", "embedding_ingest.aws.functions.handlers.no_such_step", {},
                          log_dir=tmp_path) as api, pytest.raises(RuntimeError, match="failed to start"):
        api.invoke({}, timeout=60)
    assert api.init_error["errorType"] == "Runtime.HandlerNotFound"
