"""Done, but the reply lost, on S3 + DynamoDB (moto's server), from the crash matrix's starting point (a
version published, two batches waiting, thresholds lowered so the run takes every branch):

- every write of the run lands and its answer never arrives, so the SDK sends the same request again
  (http_faults.RepliesLost);
- every step finishes, its result is lost on the way back (Lambda.ServiceException), and the workflow's
  Retry runs it again with the same input.

Both at once, in one run per workflow, which must end exactly as a clean run from a copy of the same
state: the same ids published once in the same number of versions, the same objects (by key shape),
every item and batch in the same state, no lock held."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_scenarios import AwsState, aws_workspace, copy_state, shared_template
from botocore.retries.standard import RetryQuotaChecker
from crash_injection import key_shape
from http_faults import RepliesLost
from moto_server import MotoEndpoint
from pipeline import Workspace
from published_checks import assert_published_exactly_once
from scenarios import smaller_thresholds

from asl_local.errors import RemoteTaskError
from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.records import ItemKind

pytestmark = pytest.mark.slow


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """The default session for clients made from now on (the workspaces'), so faults reach only them.

    Retries spend none of botocore's retry quota here: a retry costs 14 of a client's 500 tokens and is
    refunded only when it succeeds, and a repeated conditional write is refused by its own condition, so
    after ~35 of them a client stops retrying. A run that loses every reply at once is beyond any real
    outage; what this test checks is that each repeat is harmless."""
    fresh = boto3.Session()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", fresh)
    monkeypatch.setattr(RetryQuotaChecker, "_RETRY_COST", 0)
    return fresh


def outcome(ws: Workspace, state: AwsState, endpoint: MotoEndpoint, kind: ItemKind) -> dict[str, Any]:
    """What a clean run and a faulted one must agree on."""
    s3 = endpoint.client("s3")
    keys = [entry["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=state.bucket)
            for entry in page.get("Contents", [])]
    return {"published": sorted(ws.published_ids(kind)), "items": ws.statuses(kind),
            "batches": Counter(s.status.value for s in ws.ledger.list_batches(batch_type=kind.batch_type)),
            "versions": len(ws.ledger.list_versions(kind.database)),
            "objects": Counter(key_shape(key) for key in keys)}


def replying_twice() -> dict[str, Callable[[dict, Any], dict]]:
    """Every handler, whose first invocation with a given input finishes and then loses its result."""
    answered: set[tuple[str, str]] = set()

    def wrap(name: str, handler: Callable[[dict, Any], dict]) -> Callable[[dict, Any], dict]:
        def invoke(payload: dict, ctx: Any) -> dict:
            result = handler(payload, ctx)
            key = (name, json.dumps(payload, sort_keys=True))
            if key not in answered:
                answered.add(key)
                raise RemoteTaskError("Lambda.ServiceException", f"{name}: its result was lost on the way")
            return result
        return invoke

    return {name: wrap(name, handler) for name, handler in HANDLERS.items()}


@pytest.mark.parametrize("kind", [ItemKind.LINE, ItemKind.WORD])
def test_writes_and_steps_whose_reply_is_lost_run_again_and_end_as_a_clean_run(
        kind: ItemKind, tmp_path: Path, moto_endpoint: MotoEndpoint, session: boto3.Session,
        caplog: pytest.LogCaptureFixture) -> None:
    lost = RepliesLost()
    lost.attach(session)
    lost.enabled = False
    template = shared_template(moto_endpoint, kind)
    results = {}
    for case in ("clean", "replies lost"):
        root = tmp_path / case.replace(" ", "-")
        state = copy_state(template, root, moto_endpoint)
        ws = aws_workspace(root, moto_endpoint, state)
        submitted = ws.item_ids(kind)
        faulted = case == "replies lost"
        lost.enabled = faulted
        with smaller_thresholds():
            record = ws.run(kind, overrides=replying_twice() if faulted else None)
        lost.enabled = False
        assert record.status.value == "SUCCEEDED", f"{case}: {record.error}: {record.cause}"
        assert_published_exactly_once(ws, kind, submitted)
        results[case] = outcome(ws, state, moto_endpoint, kind)
        if faulted:
            events = ws.ledger.get_events(record.execution_arn)
            # arn:aws:states:::lambda:invoke names the function in the Task's parameters.
            steps = {function_name(e.details) for e in events if e.type == "TaskScheduled"}
            replays = [e for e in events if e.type == "TaskFailed"]
            assert len(steps) == 6 and len(replays) >= len(steps), (steps, len(replays))
        ws.ledger.close()

    writes = {operation for (_service, operation, _status) in lost.delivered}
    assert {"PutObject", "DeleteObject", "PutItem", "UpdateItem", "TransactWriteItems",
            "BatchWriteItem"} <= writes, writes
    assert results["replies lost"] == results["clean"]
    assert "not ours to release" not in caplog.text  # a repeated release is recognised as ours


def function_name(details: dict) -> str:
    """The bare function name a TaskScheduled event's lambda:invoke parameters call."""
    parameters = details["parameters"]
    parameters = json.loads(parameters) if isinstance(parameters, str) else parameters
    return parameters["FunctionName"].rsplit(":function:", 1)[-1]
