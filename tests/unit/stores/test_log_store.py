"""The local function log store answers FilterLogEvents as CloudWatch Logs does: groups that exist,
oldest first, paged with a token, within a retention."""

from __future__ import annotations

import json

import pytest

from embedding_ingest.stores.log_store import (
    InvalidTokenError,
    LocalLogStore,
    ResourceNotFoundException,
    log_group_name,
)

GROUP = log_group_name("embedding-vector-compact", "dev")
DAY_MS = 86_400_000


def _line(batch_id: str, message: str) -> str:
    return json.dumps({"level": "INFO", "message": message, "function": "embedding-vector-compact",
                       "batch_id": batch_id})


def test_filter_log_events_pages_keeps_a_retention_and_names_the_closest_group(tmp_path):
    now = [1_800_000_000.0]
    store = LocalLogStore(tmp_path / "logs.sqlite3", retention_days=30, now=lambda: now[0])
    today = int(now[0] * 1000)
    store.put_events(GROUP, "2027/01/15/[$LATEST]a", [(today - 40 * DAY_MS, _line("old", "merged")),
                                                       (today, "START RequestId: r1 Version: $LATEST"),
                                                       (today + 1, _line("run-1", "merged chunk 0")),
                                                       (today + 2, _line("run-2", "merged chunk 0")),
                                                       (today + 3, _line("run-1", "merged chunk 1"))])

    assert GROUP == "/aws/lambda/embedding-vector-compact-dev"
    everything = store.filter_log_events(GROUP)
    assert len(everything["events"]) == 4  # the 40-day-old event is past the retention
    assert everything["searchedLogStreams"] == [{"logStreamName": "2027/01/15/[$LATEST]a",
                                                 "searchedCompletely": True}]
    first = store.filter_log_events(GROUP, filter_pattern='{ $.batch_id = "run-1" }', limit=1)
    assert [json.loads(e["message"])["message"] for e in first["events"]] == ["merged chunk 0"]
    rest = store.filter_log_events(GROUP, filter_pattern='"run-1"', next_token=first["nextToken"])
    assert [json.loads(e["message"])["message"] for e in rest["events"]] == ["merged chunk 1"]
    assert "nextToken" not in rest and {"timestamp", "ingestionTime", "eventId", "logStreamName"} <= set(
        rest["events"][0])
    assert store.filter_log_events(GROUP, start_time=today + 2)["events"][0]["timestamp"] == today + 2

    with pytest.raises(ResourceNotFoundException) as missing:
        store.filter_log_events("/aws/lambda/embedding-vector-compact-lambda-dev")
    assert missing.value.suggestion == GROUP and "does not exist" in str(missing.value)
    with pytest.raises(InvalidTokenError):
        store.filter_log_events(GROUP, next_token="not-a-token")

