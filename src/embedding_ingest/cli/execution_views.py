"""How executions read on a terminal (DescribeExecution + summary, history, listings) and the paging
token of get-execution-history. JSON output stays the AWS shapes; tables show ISO-8601 times."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from embedding_ingest.cli.output import counted, table, when
from embedding_ingest.exceptions import InvalidInputError


class InvalidTokenError(InvalidInputError):
    """A --next-token that this command did not hand out (GetExecutionHistory's InvalidToken)."""


def event_details(event: dict[str, Any]) -> dict[str, Any]:
    return next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})


def state_names(events: Sequence[dict[str, Any]]) -> dict[int, str]:
    """Event id -> the state it happened in: the nearest *StateEntered up its previousEventId chain."""
    by_id = {e["id"]: e for e in events}
    names: dict[int, str] = {}
    for event in events:
        current, seen = event, 0
        while current is not None and seen < len(events):
            if current["type"].endswith("StateEntered"):
                names[event["id"]] = str(event_details(current).get("name") or "")
                break
            current, seen = by_id.get(current.get("previousEventId")), seen + 1
    return names


def task_functions(events: Sequence[dict[str, Any]]) -> dict[int, str]:
    """Event id -> the Lambda function its task invocation called, for every Task*/LambdaFunction*
    event: the function ARN's name, or lambda:invoke's FunctionName from its TaskScheduled parameters
    (the events themselves say only `resource: "invoke"`)."""
    by_id = {e["id"]: e for e in events}
    found: dict[int, str] = {}
    for event in events:
        current, seen = event, 0
        while current is not None and seen < 8 and not current["type"].endswith("StateEntered"):
            details = event_details(current)
            if current["type"] in ("TaskScheduled", "LambdaFunctionScheduled"):
                try:
                    name = json.loads(details.get("parameters") or "{}").get("FunctionName")
                except (ValueError, AttributeError):
                    name = None
                found[event["id"]] = str(name or details.get("resource") or "").rsplit(":", 1)[-1]
                break
            current, seen = by_id.get(current.get("previousEventId")), seen + 1
    return found


def failed_events(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The *Failed events, each with `stateName` added: the state that failed (error and cause are in
    its details, as AWS puts them). ExecutionFailed names the step whose Catch ended the run."""
    from embedding_ingest.pipeline.report import failed_state

    names = state_names(events)
    return [{**e, "stateName": failed_state(events) if e["type"] == "ExecutionFailed" else names.get(e["id"])}
            for e in events if e["type"].endswith("Failed")]


def page_token(name: str, offset: int) -> str:
    raw = json.dumps({"execution": name, "offset": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_offset(name: str, token: str) -> int:
    """The offset a token from `page_token(name, ...)` points at; raises InvalidTokenError otherwise."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if decoded["execution"] == name and isinstance(decoded["offset"], int) and decoded["offset"] >= 0:
            return decoded["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise InvalidTokenError(f"--next-token {token!r} was not returned by get-execution-history {name}")


def history_table(title: str, events: Sequence[dict[str, Any]], *, failed_only: bool) -> Table:
    if failed_only:
        return table(title, ["id", "time", "type", "state", "error", "cause"],
                     [[e["id"], when(e.get("timestamp")), e["type"], e.get("stateName"),
                       event_details(e).get("error"), event_details(e).get("cause")] for e in events])
    names = state_names(events)
    functions = task_functions(events)

    def detail(event: dict[str, Any]) -> str:
        details = event_details(event)
        # The function's name says it all (its ARN, or lambda:invoke's parameters, are in the JSON).
        return str(details.get("error") or functions.get(event["id"])
                   or str(details.get("resource") or "").rsplit(":", 1)[-1])

    return table(title, ["id", "prev", "time", "type", "state", "error / resource"],
                 [[e["id"], e.get("previousEventId"), when(e.get("timestamp")), e["type"],
                   names.get(e["id"]) or "", detail(e)] for e in events])


def summary_rows(summary: dict[str, Any]) -> list[list[Any]]:
    polled = ", ".join(f"{status}: {n}" for status, n in summary.get("batches_polled", {}).items())
    rows: list[list[Any]] = [
        ["batches listed", summary.get("batches_listed")],
        ["batches polled", polled or "none"],
        ["deltas written", summary.get("deltas_written")],
        ["embeddings published", summary.get("embeddings_published")],
        ["published version", summary.get("published_version") or "none"],
        ["batches marked complete", summary.get("batches_marked_complete")],
        ["items released", summary.get("items_released")],
        ["batches still active", summary.get("batches_still_active")],
    ]
    for reason in summary.get("release_reasons", []):
        rows.append([f"released from {reason['batch_id']}",
                     f"{reason['released']} items; first problem: {reason.get('first_problem') or '-'}"])
    if summary.get("failed_state"):
        rows.append(["failed state", summary["failed_state"]])
    return rows


def describe_table(described: dict[str, Any]) -> Table:
    """DescribeExecution plus its summary, as one table titled with the execution ARN."""
    rows: list[list[Any]] = [["name", described.get("name")], ["status", described.get("status")],
                             ["startDate", when(described.get("startDate"))],
                             ["stopDate", when(described.get("stopDate"))]]
    if described.get("error"):
        rows += [["error", described["error"]], ["cause", described.get("cause")]]
    summary = described.get("summary")
    if summary:
        rows += summary_rows(summary)
        rows.append(["summary", summary.get("message")])
    return table(described.get("executionArn", ""), ["field", "value"], rows)


def idle_tables(result: dict[str, Any]) -> list[Table]:
    """start-execution --until-idle: one row per execution, then the aggregated summary."""
    runs = table(counted(len(result["executions"]), "execution"),
                 ["name", "status", "started", "published", "still active"],
                 [[e.get("name"), e.get("status"), when(e.get("startDate")),
                   e.get("summary", {}).get("embeddings_published"),
                   e.get("summary", {}).get("batches_still_active")] for e in result["executions"]])
    s = result["summary"]
    totals = table("Summary", ["field", "value"], [
        ["executions", f"{s['executions']} ({s['succeeded']} succeeded, {s['failed']} failed)"],
        ["deltas written", s["deltas_written"]],
        ["embeddings published", s["embeddings_published"]],
        ["published version", s["published_version"] or "none"],
        ["batches marked complete", s["batches_marked_complete"]],
        ["items released", s["items_released"]],
        ["batches still active", s["batches_still_active"]],
        ["stopped because", s["stopped_because"]],
        ["summary", s["message"]]])
    return [runs, totals]


def executions_table(executions: Sequence[dict[str, Any]]) -> Table:
    return table("Executions", ["name", "status", "startDate", "stopDate", "error"],
                 [[e["name"], e["status"], when(e.get("startDate")), when(e.get("stopDate")), e.get("error")]
                  for e in executions])
