"""Reading an execution the way an operator does: its GetExecutionHistory-shaped events."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from pipeline import Workspace

from asl_local.limits import MAX_PAYLOAD_BYTES
from embedding_ingest.pipeline.engine_store import execution_history
from embedding_ingest.stores.records import ACTIVE_BATCH_STATUSES, ExecutionRecord, ItemKind

PAYLOAD_FIELDS = ("input", "output", "parameters")
# A Lambda ARN as Resource records LambdaFunction* events on AWS; service integrations record Task*.
_TASK_EVENT = re.compile(r"(?:Task|LambdaFunction)(Scheduled|Started|Failed|Succeeded|TimedOut)")


def history(ws: Workspace, record: ExecutionRecord) -> list[dict[str, Any]]:
    return execution_history(ws.ledger.get_events(record.execution_arn))["events"]


def details(event: dict[str, Any]) -> dict[str, Any]:
    return next((v for k, v in event.items() if k.endswith("EventDetails")), {})


def states_entered(events: list[dict[str, Any]]) -> list[str]:
    """State names in the order they were entered (Map iterations' inner states included)."""
    return [details(e)["name"] for e in events if e["type"].endswith("StateEntered")]


def top_level_path(events: list[dict[str, Any]], definition_states: set[str]) -> list[str]:
    return [name for name in states_entered(events) if name in definition_states]


def events_of_state(events: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    """Events from entering a top-level (not Map-iterated) state until leaving it."""
    start = next(i for i, e in enumerate(events)
                 if e["type"].endswith("StateEntered") and details(e)["name"] == state)
    inside = []
    for event in events[start + 1:]:
        if event["type"].endswith("StateExited") and details(event).get("name") == state:
            break
        inside.append(event)
    return inside


def task_phase(event: dict[str, Any]) -> str | None:
    """"Scheduled", "Started", "Failed", "Succeeded"... for a function call's events, else None."""
    match = _TASK_EVENT.fullmatch(event["type"])
    return match.group(1) if match else None


def task_calls(events: list[dict[str, Any]], state: str) -> list[tuple[str, dict[str, Any]]]:
    """(phase, details) of every function-call event of a top-level Task state, in order."""
    return [(phase, details(e)) for e in events_of_state(events, state) if (phase := task_phase(e))]


def task_output(events: list[dict[str, Any]], state: str) -> dict[str, Any]:
    """The result a top-level Task state's function returned (its last successful call).

    Through arn:aws:states:::lambda:invoke the TaskSucceeded output is Lambda's Invoke response, whose
    Payload is what the function returned; a bare function ARN records the return value itself.
    """
    succeeded = [d for phase, d in task_calls(events, state) if phase == "Succeeded"]
    output = json.loads(succeeded[-1]["output"])
    return output["Payload"] if isinstance(output, dict) and "StatusCode" in output else output


def largest_payload(events: list[dict[str, Any]]) -> tuple[int, str]:
    """(bytes, "event type/field") of the biggest state input, output or task parameters recorded."""
    sizes = [(len(details(e)[f].encode()), f"{e['type']}/{f}")
             for e in events for f in PAYLOAD_FIELDS if isinstance(details(e).get(f), str)]
    return max(sizes)


def assert_within_payload_limit(events: list[dict[str, Any]]) -> None:
    size, where = largest_payload(events)
    assert size <= MAX_PAYLOAD_BYTES, f"{where} carries {size} bytes, over the 256 KB limit"


def batch_statuses(ws: Workspace, kind: ItemKind) -> Counter:
    return Counter(s.status for s in ws.ledger.list_batches(batch_type=kind.batch_type))


def active_batches(ws: Workspace, kind: ItemKind) -> list:
    return ws.ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES, batch_type=kind.batch_type)


def output_keys_in_order(record: ExecutionRecord) -> list[str]:
    return list(json.loads(record.output or "{}"))
