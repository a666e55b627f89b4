"""The console's read-only JSON API under /api/: executions, one execution with its graph and history,
a state's detail, batches, snapshots and a query over the published snapshot.

Every handler reads through the ports held by `Console` (an ExecutionSource, the Ledger, the
ObjectStore): nothing here knows which adapter backs them. Errors are JSON: {"error", "message"}."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from embedding_ingest.config import Settings
from embedding_ingest.console import graph
from embedding_ingest.console.sources import WORKFLOWS, ExecutionNotFoundError, ExecutionSource
from embedding_ingest.exceptions import EmbeddingIngestError, InvalidInputError
from embedding_ingest.snapshots.version_ids import short_version, short_version_of, unique_prefix_length
from embedding_ingest.stores.ports import Ledger, ObjectStore
from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus, ExecutionStatus, ItemKind

MAX_PAGE = 200
MAX_QUERY_RESULTS = 50
HISTORY_TTL_SECONDS = 0.8
MAX_CACHED_HISTORIES = 32


@dataclass
class Console:
    """What the console serves: its ports, and whether actions are allowed (with which token)."""

    source: ExecutionSource
    ledger: Ledger
    objects: ObjectStore
    settings: Settings
    allow_actions: bool = False
    token: str | None = None
    started: dict[str, Any] = field(default_factory=dict)  # executions started from the console
    _snapshots: dict[ItemKind, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False  # close() ran: snapshot() opens nothing more

    _histories: dict[str, tuple[float, bool, list[dict[str, Any]]]] = field(default_factory=dict)
    _definitions: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def history(self, name: str, *, final: bool) -> list[dict[str, Any]]:
        """The execution's events, read at most once per HISTORY_TTL_SECONDS while it runs (a page polls
        graph, history and state detail each second; on AWS, GetExecutionHistory is throttled) and once
        for all when it has ended (`final`: its history cannot change any more). A copy read while it
        ran is never served as its final history: the page stops polling on the final answer, so a
        graph drawn from a stale copy would stay wrong."""
        cached = self._histories.get(name)
        now = time.monotonic()
        if cached and (cached[1] or (not final and now - cached[0] < HISTORY_TTL_SECONDS)):
            return cached[2]
        events = self.source.history(name)
        with self._lock:
            if len(self._histories) >= MAX_CACHED_HISTORIES:
                self._histories.pop(next(iter(self._histories)))
            self._histories[name] = (now, final, events)
        return events

    def definition(self, name: str) -> dict[str, Any] | None:
        """The definition the execution runs (it never changes: read once per execution)."""
        if name not in self._definitions:
            self._definitions[name] = self.source.definition(name)
        return self._definitions[name]

    def snapshot(self, kind: ItemKind):
        """The published `kind` snapshot (consumer API), opened once and moved to the current version
        on every call. Raises NothingPublishedError, or ApiError 503 once the console is closed (it
        then opens nothing)."""
        from embedding_ingest import open_snapshot

        with self._lock:
            if self._closed:
                raise self.closed_error()
            opened = self._snapshots.get(kind)
            if opened is None:
                opened = self._snapshots[kind] = open_snapshot(kind, settings=self.settings)
        try:
            opened.refresh()
        except InvalidInputError:  # close() closed it meanwhile
            if self._closed:
                raise self.closed_error() from None
            raise
        return opened

    @property
    def closed(self) -> bool:
        return self._closed

    @staticmethod
    def closed_error() -> ApiError:
        return ApiError(503, "ConsoleClosed", "the console is shutting down: it answers no more queries")

    def close(self) -> None:
        """Close the snapshots it opened; a later query is answered 503 and opens none."""
        with self._lock:
            self._closed = True
            for opened in self._snapshots.values():
                opened.close()
            self._snapshots.clear()


class ApiError(Exception):
    """An answer other than 200: HTTP `status`, an `error` name and a one-line `message`."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def error_response(exc: ApiError) -> JSONResponse:
    """{"error", "message"} with the error's status."""
    return JSONResponse({"error": exc.error, "message": exc.message}, status_code=exc.status)


def _console(request: Request) -> Console:
    return request.app.state.console


def _choice(request: Request, name: str, allowed: type, default: Any = None) -> Any:
    raw = request.query_params.get(name) or None
    if raw is None:
        return default
    try:
        return allowed(raw)
    except ValueError:
        values = ", ".join(v.value for v in allowed) if hasattr(allowed, "__members__") else ""
        raise ApiError(400, "InvalidParameter", f"{name}={raw!r} is not valid"
                       + (f" (expected one of {values})" if values else "")) from None


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "InvalidParameter", f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, "InvalidParameter", f"{name}={value} is out of range {low}..{high}")
    return value


def summary_of(described: dict[str, Any], events: list[dict[str, Any]] | None = None, *,
               ledger: Ledger | None = None) -> dict[str, Any]:
    """The execution's `summary` (pipeline.report.summarize_execution: batches polled, embeddings
    published, version, what failed where...); `events` let it name a failed run's state. With the
    `ledger`, the version is shown as everywhere else (version_ids.short_version: in the message, and
    as `published_version_short`; `published_version` stays whole)."""
    from embedding_ingest.pipeline.report import summarize_execution

    # The summary speaks of batches and embeddings: it means nothing for another state machine's run
    # (`definitions run`), which would otherwise read "published nothing ... next: submit line".
    if described.get("status") == "RUNNING" or described.get("workflow") not in WORKFLOWS:
        return {}
    kept = None
    if ledger is not None:
        try:
            kept = [v.version for v in ledger.list_versions(ItemKind(described["workflow"]).database)]
        except EmbeddingIngestError:  # the ledger unreachable: the summary still answers, versions whole
            kept = None
    summary = summarize_execution(described, events=events, kept_versions=kept)
    if kept is not None and summary.get("published_version"):
        summary["published_version_short"] = short_version(summary["published_version"], kept)
    return summary


def _listing(described: dict[str, Any]) -> dict[str, Any]:
    start, stop = described.get("startDate"), described.get("stopDate")
    # AWS's ListExecutions carries no output: a published count only where the output is known.
    summary = summary_of(described) if "output" in described or described.get("status") != "SUCCEEDED" \
        else {}
    published = summary.get("embeddings_published")
    return {"name": described["name"], "executionArn": described.get("executionArn"),
            "workflow": described.get("workflow"), "status": described.get("status"), "startDate": start,
            "stopDate": stop, "durationSeconds": (stop - start) if start and stop else None,
            "published": published}


def list_executions(request: Request) -> JSONResponse:
    """GET /api/executions?workflow=&status=&limit=&offset= - newest first; `next_offset` is null on
    the last page."""
    console = _console(request)
    workflow = _choice(request, "workflow", ItemKind)
    status = _choice(request, "status", ExecutionStatus)
    limit = _int(request, "limit", 20, 1, MAX_PAGE)
    offset = _int(request, "offset", 0, 0, 100_000)
    listed = console.source.list(workflow=workflow.value if workflow else None,
                                 status=status.value if status else None, limit=offset + limit + 1)
    page = listed[offset:offset + limit]
    return JSONResponse({"executions": [_listing(e) for e in page], "offset": offset, "limit": limit,
                         "next_offset": offset + limit if len(listed) > offset + limit else None})


def _describe(console: Console, name: str) -> dict[str, Any]:
    try:
        return console.source.describe(name)
    except ExecutionNotFoundError as exc:
        raise ApiError(404, "ExecutionDoesNotExist", str(exc)) from None


def get_execution(request: Request) -> JSONResponse:
    """GET /api/executions/{name} - DescribeExecution, plus workflow, duration and the output summary."""
    console = _console(request)
    described = _describe(console, request.path_params["name"])
    events = console.history(described["name"], final=True) if described.get("status") == "FAILED" else None
    return JSONResponse(described | _listing(described)
                        | {"summary": summary_of(described, events, ledger=console.ledger)})


def get_history(request: Request) -> JSONResponse:
    """GET /api/executions/{name}/history?failed_only=true - events oldest first, each with the state
    it belongs to (`stateName`); failed_only keeps *Failed events, as `get-execution-history
    --failed-only` does."""
    console = _console(request)
    name = request.path_params["name"]
    described = _describe(console, name)
    events = console.history(name, final=described.get("status") != "RUNNING")
    owners = graph.state_of_events(graph.attribute_visits(events))
    shaped = [e | {"stateName": owners.get(e["id"])} for e in events]
    if request.query_params.get("failed_only") in ("1", "true", "yes"):
        shaped = [e for e in shaped if e["type"].endswith("Failed")]
    return JSONResponse({"events": shaped, "count": len(shaped)})


def _graph_inputs(console: Console, name: str) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    described = _describe(console, name)
    running = described.get("status") == "RUNNING"
    return described, console.history(name, final=not running), running


def get_graph(request: Request) -> JSONResponse:
    """GET /api/executions/{name}/graph - the state machine's nodes and edges, each state with its status
    and counts (see console.graph), and the execution's status (poll until it is not RUNNING)."""
    console = _console(request)
    name = request.path_params["name"]
    described, events, running = _graph_inputs(console, name)
    definition = console.definition(name)
    drawn = graph.execution_graph(definition, events, running=running)
    if definition is None:
        drawn["note"] = _no_definition_note(console, described)
    return JSONResponse({"name": name, "status": described.get("status"), "graph": drawn,
                         "events": len(events), "legend": list(graph.STATUSES)})


def _no_definition_note(console: Console, described: dict[str, Any]) -> str:
    """Why there is no graph: the local workspace keeps the definitions of the line and word workflows
    only (a `definitions run` records its history, not its definition)."""
    machine = str(described.get("stateMachineArn") or "").rsplit(":", 1)[-1] or "unknown"
    if console.source.backend == "local":
        return (f"No graph for this execution: it ran the state machine {machine!r}, not the line or word "
                "workflow, and the workspace keeps no copy of its definition (runs of `embedding-ingest "
                "definitions run` record their history only). Its events are listed below.")
    return f"No graph for this execution: the definition of state machine {machine!r} could not be read."


def get_state(request: Request) -> JSONResponse:
    """GET /api/executions/{name}/states/{state} - input, output, error, cause and events of one state."""
    console = _console(request)
    name, state = request.path_params["name"], request.path_params["state"]
    _described, events, running = _graph_inputs(console, name)
    definition = console.definition(name) or {}
    state_type = _find_state_type(definition, state)
    if state_type is None and definition:
        raise ApiError(404, "StateDoesNotExist", f"execution {name!r} has no state named {state!r}")
    return JSONResponse(graph.state_detail(state, graph.attribute_visits(events), running=running,
                                           state_type=state_type or ""))


def _find_state_type(program: dict[str, Any], state: str) -> str | None:
    for name, spec in (program.get("States") or {}).items():
        if name == state:
            return spec.get("Type")
        nested = [spec.get("ItemProcessor") or spec.get("Iterator") or {}, *spec.get("Branches", [])]
        found = next((t for p in nested if (t := _find_state_type(p, state))), None)
        if found:
            return found
    return None


def list_batches(request: Request) -> JSONResponse:
    """GET /api/batches?status=&type=&limit=&offset= - batch summaries (oldest first; a page of `limit`
    from `offset` when limit is given, `next_offset` null on the last page), their total `count`, and
    item counts by kind/status."""
    ledger = _console(request).ledger
    status = _choice(request, "status", BatchStatus)
    kind = _choice(request, "type", ItemKind)
    batches = ledger.list_batches(statuses=[status] if status else None,
                                  batch_type=kind.batch_type if kind else None)
    offset = _int(request, "offset", 0, 0, 10_000_000)
    limit = _int(request, "limit", max(len(batches) - offset, 1), 1, 10_000_000)
    page = batches[offset:offset + limit]
    counts = {k.value: {s.value: ledger.count_items(k).get(s, 0) for s in EmbeddingStatus} for k in ItemKind}
    return JSONResponse({"batches": [b.model_dump(mode="json") for b in page], "count": len(batches),
                         "offset": offset, "limit": limit,
                         "next_offset": offset + limit if offset + limit < len(batches) else None,
                         "items": counts})


def list_snapshots(request: Request) -> JSONResponse:
    """GET /api/snapshots - per database (lines, words): kept versions newest first, current marked,
    each also with `short` and `parent_short` (the ids as people are shown them, version_ids)."""
    ledger = _console(request).ledger
    databases = {}
    for kind in ItemKind:
        current = ledger.get_published(kind.database)
        kept = ledger.list_versions(kind.database)
        length = unique_prefix_length([v.version for v in kept])
        versions = [v.model_dump(mode="json") | {"current": bool(current and v.version == current.version),
                                                 "short": v.version[:length],
                                                 "parent_short": (v.parent_version or "")[:length] or None}
                    for v in kept]
        databases[kind.database] = {"current": current.version if current else None, "versions": versions}
    return JSONResponse({"databases": databases})


def query(request: Request) -> JSONResponse:
    """GET /api/query?kind=line&text=...&n=10 - nearest records of the published snapshot, nearest first,
    through the consumer API (open_snapshot: the text is embedded with the snapshot's own model)."""
    console = _console(request)
    kind = _choice(request, "kind", ItemKind, ItemKind.LINE)
    text = (request.query_params.get("text") or "").strip()
    if not text:
        raise ApiError(400, "InvalidParameter", "text is empty: type something to search for")
    n = _int(request, "n", 10, 1, MAX_QUERY_RESULTS)
    try:
        snapshot = console.snapshot(kind)
        found = snapshot.query(text, n_results=n, include=["documents", "metadatas", "distances"])
    except EmbeddingIngestError as exc:
        if console.closed:  # the console closed the snapshot during this query
            raise console.closed_error() from None
        raise ApiError(400 if isinstance(exc, InvalidInputError) else 409, type(exc).__name__,
                       str(exc)) from None
    hits = zip(found["ids"][0], found["distances"][0], found["documents"][0], found["metadatas"][0],
               strict=True)
    return JSONResponse({"kind": kind.value, "text": text, "model": snapshot.model,
                         "version": snapshot.version,
                         "version_short": short_version_of(console.ledger, kind.database, snapshot.version),
                         "results": [{"id": i, "distance": float(d), "document": doc or "",
                                      "metadata": dict(meta or {})} for i, d, doc, meta in hits]})


ROUTES = [
    Route("/api/executions", list_executions),
    Route("/api/executions/{name}", get_execution),
    Route("/api/executions/{name}/history", get_history),
    Route("/api/executions/{name}/graph", get_graph),
    Route("/api/executions/{name}/states/{state}", get_state),
    Route("/api/batches", list_batches),
    Route("/api/snapshots", list_snapshots),
    Route("/api/query", query),
]
