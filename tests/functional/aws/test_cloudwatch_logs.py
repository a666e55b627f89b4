"""`logs filter-log-events --backend aws`: the CloudWatch Logs adapter answers in the local store's shape
(stores/log_store.py), on moto's server (real HTTP): the events of every page up to --max-items, a
NextToken that goes on, and a missing group named with the closest one there is."""

from __future__ import annotations

import json
import time

import pytest
from moto_server import unique_name

from embedding_ingest.stores.cloudwatch_logs import filter_log_events
from embedding_ingest.stores.log_store import ResourceNotFoundException


def _line(batch_id: str) -> str:
    return json.dumps({"level": "INFO", "message": "merged", "batch_id": batch_id})


def test_cloudwatch_logs_answers_in_the_same_shape(moto_endpoint):
    client = moto_endpoint.client("logs")
    group = f"/aws/lambda/{unique_name('embedding-vector-compact')}"
    client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName="s")
    client.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": int(time.time() * 1000) + i, "message": _line(f"run-{i}")} for i in range(3)])

    page = filter_log_events(client, group, max_items=2)
    assert [json.loads(e["message"])["batch_id"] for e in page["events"]] == ["run-0", "run-1"]
    assert page["NextToken"]
    rest = filter_log_events(client, group, starting_token=page["NextToken"])
    assert [json.loads(e["message"])["batch_id"] for e in rest["events"]] == ["run-2"]
    with pytest.raises(ResourceNotFoundException) as missing:
        filter_log_events(client, group + "-lambda")
    assert missing.value.suggestion == group
