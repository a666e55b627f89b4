"""The console's only writes: start an execution, reset a batch's status, roll a snapshot back.

Refused (403) unless the console was started with --allow-actions, and then each request must carry
the token printed at start-up in the X-Console-Token header. A header, not a cookie: a page on another
origin cannot add it without a CORS preflight, which this server never grants, so the check is CSRF-safe.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from embedding_ingest.console.api import ApiError, Console
from embedding_ingest.exceptions import EmbeddingIngestError
from embedding_ingest.stores.records import BatchStatus, ItemKind

TOKEN_HEADER = "X-Console-Token"
STARTED_WAIT_SECONDS = 15.0


async def _authorised_body(request: Request) -> tuple[Console, dict[str, Any]]:
    console: Console = request.app.state.console
    if not console.allow_actions or not console.token:
        raise ApiError(403, "ReadOnlyConsole", "this console is read-only: start it with --allow-actions "
                                               "to start executions, reset batches or roll back")
    given = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode(), console.token.encode()):
        raise ApiError(403, "InvalidToken", f"missing or wrong {TOKEN_HEADER} header: use the token the "
                                            "console printed at start-up")
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "InvalidBody", f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidBody", "request body must be a JSON object")
    return console, body


def _field(body: dict[str, Any], name: str, kind: type | None = None) -> Any:
    value = body.get(name)
    if value in (None, ""):
        raise ApiError(400, "InvalidBody", f"field {name!r} is required")
    if kind is None:
        return str(value)
    try:
        return kind(value)
    except ValueError:
        raise ApiError(400, "InvalidBody", f"field {name!r}: {value!r} is not one of "
                                           f"{', '.join(v.value for v in kind)}") from None


async def start_execution(request: Request) -> JSONResponse:
    """POST /api/actions/start-execution {"workflow": "line"|"word", "name"?} -> 202 {"name"}: the run
    goes on in a background thread of the console; watch it in the graph view."""
    from embedding_ingest.pipeline.run import new_execution_name, run_execution

    console, body = await _authorised_body(request)
    kind = _field(body, "workflow", ItemKind)
    name = body.get("name") or new_execution_name(kind)
    if console.source.backend != "local":
        raise ApiError(403, "ReadOnlyConsole", "on --backend aws the console is read-only")

    def run() -> None:
        try:
            console.started[name] = run_execution(kind, console.settings, name=name, ledger=console.ledger,
                                                  objects=console.objects)["status"]
        except EmbeddingIngestError as exc:  # e.g. a reused name: the execution was never created
            console.started[name] = f"refused: {exc}"

    console.started[name] = "STARTING"
    threading.Thread(target=run, name=f"console-run-{name}", daemon=True).start()

    def recorded() -> bool:
        """Wait (up to STARTED_WAIT_SECONDS) until the execution exists, so the page can open it."""
        deadline = time.monotonic() + STARTED_WAIT_SECONDS
        while time.monotonic() < deadline:
            if str(console.started.get(name, "")).startswith("refused"):
                raise ApiError(409, "ExecutionNotStarted", console.started[name])
            if console.ledger.get_execution(name) is not None:
                return True
            time.sleep(0.1)
        return False

    found = await run_in_threadpool(recorded)
    return JSONResponse({"name": name, "workflow": kind.value, "recorded": found}, status_code=202)


async def reset_batch(request: Request) -> JSONResponse:
    """POST /api/actions/reset-batch {"batch_id", "status"} -> the batch summary after the change."""
    console, body = await _authorised_body(request)
    batch_id, status = _field(body, "batch_id"), _field(body, "status", BatchStatus)

    def reset():
        from embedding_ingest.backends import build_provider
        from embedding_ingest.submission.batch_reset import reset_batches

        if console.ledger.get_batch(batch_id) is None:
            raise ApiError(404, "BatchDoesNotExist", f"no batch {batch_id!r}")
        # as `batches reset` does: a closed status cancels it at the provider and releases its items
        reset_batches(console.ledger, build_provider(console.settings), [batch_id], status,
                      provider_retry_limit=console.settings.max_provider_retries)
        return console.ledger.get_batch(batch_id)

    return JSONResponse((await run_in_threadpool(reset)).model_dump(mode="json"))


async def rollback(request: Request) -> JSONResponse:
    """POST /api/actions/rollback {"kind": "line"|"word", "version"} -> the version now published
    (under the database's lock, as `snapshots rollback` does)."""
    from embedding_ingest.snapshots import rollback as rollback_to
    from embedding_ingest.steps.lease import HeldLock, unique_owner

    console, body = await _authorised_body(request)
    kind, version = _field(body, "kind", ItemKind), _field(body, "version")

    def move():
        with HeldLock(console.ledger, kind.database, unique_owner("console-rollback", kind.database),
                      console.settings.lock_ttl_seconds) as held:
            return rollback_to(console.objects, console.ledger, held.lease, database=kind.database,
                               version=version)

    try:
        moved = await run_in_threadpool(move)
    except EmbeddingIngestError as exc:
        raise ApiError(409, type(exc).__name__, str(exc)) from None
    return JSONResponse(moved.model_dump(mode="json"))


ROUTES = [
    Route("/api/actions/start-execution", start_execution, methods=["POST"]),
    Route("/api/actions/reset-batch", reset_batch, methods=["POST"]),
    Route("/api/actions/rollback", rollback, methods=["POST"]),
]
