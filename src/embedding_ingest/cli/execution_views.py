"""How executions read on a terminal (DescribeExecution + summary, history, listings) and the paging
token of get-execution-history. JSON output stays the AWS shapes; tables show ISO-8601 times."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import RenderableType

from embedding_ingest.cli import workspace
from embedding_ingest.cli.output import counted, when
from embedding_ingest.cli.tables import Column, fitted, record
from embedding_ingest.exceptions import InvalidInputError


class InvalidTokenError(InvalidInputError):
    """A --next-token that this command did not hand out (GetExecutionHistory's InvalidToken)."""


def event_details(event: dict[str, Any]) -> dict[str, Any]:
    return next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})


def state_names(events: Sequence[dict[str, Any]]) -> dict[int, str]:
    """Event id -> the state it happened in, as the JSON names it: the event's own details `name`
    (state entered/exited, Map iteration), else that of the nearest event up its previousEventId chain
    that has one (a Lambda event -> its Task state; MapStateSucceeded -> the Map, through its last
    iteration). Execution-level events have no state."""
    by_id = {e["id"]: e for e in events}
    names: dict[int, str] = {}
    for event in events:
        if event["type"].startswith("Execution"):
            continue
        current, seen = event, 0
        while current is not None and seen <= len(events):
            name = event_details(current).get("name")
            if name:
                names[event["id"]] = str(name)
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
    """The nextToken of a history page: the offset of the next event and 8 hex digits of the
    execution name's sha256 (`5-3f2a9c1b`), short enough for the `next:` hint to fit a terminal."""
    return f"{offset}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def page_offset(name: str, token: str) -> int:
    """The offset a token from `page_token(name, ...)` points at; raises InvalidTokenError otherwise."""
    offset = token.partition("-")[0]
    if offset.isdigit() and page_token(name, int(offset)) == token:
        return int(offset)
    raise InvalidTokenError(f"--next-token {token!r} was not returned by get-execution-history {name}")


def _clock(events: Sequence[dict[str, Any]]) -> tuple[str, Callable[[Any], str | None]]:
    """A title suffix and a time format for history rows: the time of day alone when every event is
    on one date (the date goes in the title), else the whole stamp."""
    stamps = [when(e.get("timestamp")) for e in events if e.get("timestamp") is not None]
    days = {stamp[:10] for stamp in stamps if stamp}
    if len(days) == 1:
        return f" on {days.pop()}", lambda epoch: (when(epoch) or "")[11:] or None
    return "", when


def history_table(title: str, events: Sequence[dict[str, Any]], *, failed_only: bool) -> RenderableType:
    on_day, clock = _clock(events)
    if failed_only:
        return fitted(title + on_day, [Column("id", justify="right", plain=True), Column("time", drop=2),
                                       Column("type"), Column("state"), Column("error", wrap=True),
                                       Column("cause", wrap=True, drop=1)],
                      [[e["id"], clock(e.get("timestamp")), e["type"], e.get("stateName"),
                        event_details(e).get("error"), event_details(e).get("cause")] for e in events])
    names = state_names(events)
    functions = task_functions(events)

    def detail(event: dict[str, Any]) -> str | None:
        # The function's name says it all (its ARN, or lambda:invoke's parameters, are in the JSON).
        resource = str(event_details(event).get("resource") or "")
        return functions.get(event["id"]) or resource.rsplit(":", 1)[-1] or None

    return fitted(title + on_day, [Column("id", justify="right", plain=True),
                                   Column("prev", justify="right", drop=5, plain=True),
                                   Column("time", drop=2), Column("type"), Column("state"),
                                   Column("error", wrap=True, drop=1), Column("resource", drop=4)],
                  [[e["id"], e.get("previousEventId"), clock(e.get("timestamp")), e["type"],
                    names.get(e["id"]), event_details(e).get("error"), detail(e)] for e in events])


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    polled = ", ".join(f"{status}: {n}" for status, n in summary.get("batches_polled", {}).items())
    rows: list[tuple[str, Any]] = [
        ("batches listed", summary.get("batches_listed")),
        ("batches polled", polled or "none"),
        ("deltas written", summary.get("deltas_written")),
        ("embeddings published", summary.get("embeddings_published")),
        ("published version", workspace.shown_version(f"{summary.get('workflow', 'line')}s",
                                                      summary.get("published_version")) or "none"),
        ("batches marked complete", summary.get("batches_marked_complete")),
        ("items released", summary.get("items_released")),
        ("batches still active", summary.get("batches_still_active")),
    ]
    for reason in summary.get("release_reasons", []):
        rows.append((f"released from {reason['batch_id'][:8]}",
                     f"{reason['released']:,} items; first problem: {reason.get('first_problem') or '-'}"))
    if summary.get("failed_state"):
        rows.append(("failed state", summary["failed_state"]))
    return rows


def describe_table(described: dict[str, Any]) -> RenderableType:
    """DescribeExecution plus its summary, read vertically (the ARN is in --output json)."""
    rows: list[tuple[str, Any]] = [("name", described.get("name")), ("status", described.get("status")),
                                   ("started", when(described.get("startDate"))),
                                   ("stopped", when(described.get("stopDate")))]
    if described.get("error"):
        rows += [("error", described["error"]), ("cause", described.get("cause"))]
    summary = described.get("summary")
    if summary:
        rows += summary_rows(summary)
        rows.append(("summary", summary.get("message")))
    return record(f"Execution {described.get('name')}", rows)


def idle_tables(result: dict[str, Any]) -> list[RenderableType]:
    """start-execution --until-idle: one row per execution, then the aggregated summary."""
    runs = fitted(counted(len(result["executions"]), "execution"),
                  [Column("name"), Column("status"), Column("published", justify="right"),
                   Column("still active", justify="right"), Column("started", drop=1)],
                  [[e.get("name"), e.get("status"), e.get("summary", {}).get("embeddings_published"),
                    e.get("summary", {}).get("batches_still_active"), when(e.get("startDate"))]
                   for e in result["executions"]])
    s = result["summary"]
    totals = record("Summary", [
        ("executions", f"{s['executions']} ({s['succeeded']} succeeded, {s['failed']} failed)"),
        ("deltas written", s["deltas_written"]),
        ("embeddings published", s["embeddings_published"]),
        ("published version", workspace.shown_version(f"{s['workflow']}s", s["published_version"]) or "none"),
        ("batches marked complete", s["batches_marked_complete"]),
        ("items released", s["items_released"]),
        ("batches still active", s["batches_still_active"]),
        ("stopped because", s["stopped_because"]),
        ("summary", s["message"])])
    return [runs, totals]


def _duration(execution: dict[str, Any]) -> str | None:
    start, stop = execution.get("startDate"), execution.get("stopDate")
    if start is None or stop is None:
        return None
    seconds = float(stop) - float(start)
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def executions_table(executions: Sequence[dict[str, Any]]) -> RenderableType:
    return fitted(counted(len(executions), "execution"),
                  [Column("name"), Column("status"), Column("started"),
                   Column("took", justify="right", drop=2), Column("error", wrap=True, drop=1)],
                  [[e["name"], e["status"], when(e.get("startDate")), _duration(e), e.get("error")]
                   for e in executions])
