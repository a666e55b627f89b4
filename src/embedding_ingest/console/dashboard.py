"""GET /api/dashboard - everything the dashboard page draws, in one answer (one request per page):

- `items`: per kind, item counts by embedding status (the stacked bars);
- `usage_by_day`: per UTC day of submission and kind, batches, tokens submitted and billed, and cost
  at the batch price (EMBED batches only, as `status` counts them);
- `timeline`: per batch (the newest `MAX_TIMELINE` by submission), when it was submitted, when a poll
  first read its results and when it was published (`results_at`, `published_at`: None until then,
  and for batches recorded before those fields existed);
- `executions`: the newest `MAX_EXECUTIONS` line/word executions with the embeddings each published.

Everything is read through the Ledger and ExecutionSource ports, so SQLite and DynamoDB, the local
engine and AWS alike serve it."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from embedding_ingest.console.sources import WORKFLOWS
from embedding_ingest.stores.records import BatchOperation, BatchSummary, EmbeddingStatus, ItemKind

MAX_TIMELINE = 200
MAX_EXECUTIONS = 60


def _kind(summary: BatchSummary) -> str:
    return ItemKind.LINE.value if summary.batch_type is ItemKind.LINE.batch_type else ItemKind.WORD.value


def usage_by_day(batches: list[BatchSummary], settings) -> list[dict[str, Any]]:
    """[{day "YYYY-MM-DD" (UTC, of submission), kind, batches, tokens_submitted, tokens_billed, cost_usd}],
    oldest day first; EMBED batches only (deletion batches never reach the provider)."""
    from embedding_ingest.submission.budgets import cost_usd

    rows: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"batches": 0, "tokens_submitted": 0, "tokens_billed": 0, "cost_usd": 0.0})
    for summary in batches:
        if summary.operation is not BatchOperation.EMBED:
            continue
        day = datetime.fromtimestamp(summary.submitted_at, UTC).date().isoformat()
        row = rows[(day, _kind(summary))]
        row["batches"] += 1
        row["tokens_submitted"] += summary.tokens or 0
        row["tokens_billed"] += summary.billed_tokens or 0
        row["cost_usd"] += cost_usd(summary.billed_tokens or 0, summary.model or "", settings)
    return [{"day": day, "kind": kind, **row, "cost_usd": round(row["cost_usd"], 6)}
            for (day, kind), row in sorted(rows.items())]


def timeline(batches: list[BatchSummary]) -> list[dict[str, Any]]:
    """The newest MAX_TIMELINE batches, oldest first: submitted, results read, published."""
    newest = sorted(batches, key=lambda b: b.submitted_at)[-MAX_TIMELINE:]
    return [{"batch_id": b.batch_id, "kind": _kind(b), "operation": b.operation.value,
             "status": b.status.value, "items": b.item_count, "submitted_at": b.submitted_at,
             "results_at": b.results_at, "published_at": b.published_at,
             "published_version": b.published_version} for b in newest]


def dashboard(request: Request) -> JSONResponse:
    """GET /api/dashboard (see the module docstring)."""
    from embedding_ingest.console.api import summary_of

    console = request.app.state.console
    ledger = console.ledger
    batches = ledger.list_batches()
    counts = {k: ledger.count_items(k) for k in ItemKind}  # one call per kind counts every status
    items = {k.value: {s.value: counts[k].get(s, 0) for s in EmbeddingStatus} for k in ItemKind}
    executions = []
    for described in console.source.list(workflow=None, status=None, limit=MAX_EXECUTIONS):
        if described.get("workflow") not in WORKFLOWS:
            continue
        summary = summary_of(described) if "output" in described else {}
        executions.append({"name": described["name"], "workflow": described.get("workflow"),
                           "status": described.get("status"), "startDate": described.get("startDate"),
                           "published": summary.get("embeddings_published")})
    return JSONResponse({"items": items, "usage_by_day": usage_by_day(batches, console.settings),
                         "timeline": timeline(batches), "executions": executions[::-1]})


ROUTES = [Route("/api/dashboard", dashboard)]
