"""Commands over receipts, submission, batch summaries and the object store."""

from __future__ import annotations

import typer

from embedding_ingest.cli import workspace
from embedding_ingest.cli.output import (
    OutputFormat,
    OutputOption,
    counted,
    emit,
    fail,
    guarded,
    hint,
    progress,
    table,
    when,
)
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.records import BatchStatus, BatchType, ItemKind

receipts_app = typer.Typer(help="Import and delete receipts.", no_args_is_help=True)
batches_app = typer.Typer(help="Batch summaries.", no_args_is_help=True)

EXIT_SOME_REJECTED = 3


def submit(kind: ItemKind = typer.Argument(..., help="line or word", case_sensitive=False),
           max_items_per_batch: int = typer.Option(None, "--max-items-per-batch", min=1,
                                                   help="Requests per batch (default 1000, max 50000)"),
           max_batches: int = typer.Option(None, "--max-batches", min=1),
           max_tokens_per_batch: int = typer.Option(None, "--max-tokens-per-batch", min=1,
                                                    help="Input tokens per batch (MAX_TOKENS_PER_BATCH)"),
           dry_run: bool = typer.Option(False, "--dry-run",
                                        help="Plan the batches and estimate tokens and cost; change nothing"),
           output: OutputFormat = OutputOption) -> None:
    """Claim un-embedded lines/words and submit them to the provider as batches, within the per-batch
    caps and the enqueued token/request budgets (--dry-run: only say what would be sent and its cost)."""
    from embedding_ingest.cli.submit_report import render_submit_report
    from embedding_ingest.submission.submit import submit as run_submit

    settings = workspace.settings()
    pending = workspace.ledger().count_items(kind).get("NONE", 0)
    total = None if dry_run or not pending else pending
    with progress(output, f"submitting {kind.value}s", total=total) as advance:
        report = guarded(output, lambda: run_submit(
            kind, workspace.ledger(), workspace.provider(), settings=settings,
            max_items_per_batch=max_items_per_batch or settings.max_items_per_batch,
            max_tokens_per_batch=max_tokens_per_batch, max_batches=max_batches, dry_run=dry_run,
            on_batch=lambda sent: advance(sent.item_count)))
    emit({**report.model_dump(mode="json"), **report.totals()}, output, render_submit_report)


@batches_app.command("list")
def list_batches(status: list[BatchStatus] = typer.Option(None, "--status", help="Filter by status",
                                                          case_sensitive=False),
                 kind: ItemKind = typer.Option(None, "--type", help="line or word", case_sensitive=False),
                 output: OutputFormat = OutputOption) -> None:
    """Batch summaries, oldest first."""
    guarded(output, workspace.require_workspace)
    batches = workspace.ledger().list_batches(statuses=status or None,
                                            batch_type=kind.batch_type if kind else None)
    emit({"batches": batches, "count": len(batches)}, output,
         lambda r: table(counted(r["count"], "batch"),
                         ["batch_id", "type", "status", "provider", "provider batch", "items", "updated",
                          "last error"],
                         [[b.batch_id, b.batch_type.value, b.status.value, b.provider_status,
                           b.provider_batch_id, b.item_count, when(b.updated_at or b.submitted_at),
                           b.last_error] for b in r["batches"]]))


@batches_app.command("reset")
def reset_batches(stage: str = typer.Argument(None, metavar="[STAGE]",
                                              help="The stage (EMBEDDING_INGEST_STAGE, default dev); alone, "
                                                   "it selects the batches failed executions left"),
                  status: BatchStatus = typer.Option(..., "--status", help="Status to set",
                                                     case_sensitive=False),
                  ids: list[str] = typer.Option(None, "--ids",
                                                help="Batch ids: --ids A,B or --ids A --ids B"),
                  from_status: list[BatchStatus] = typer.Option(None, "--from-status",
                                                                help="Only batches currently in these",
                                                                case_sensitive=False),
                  all_batches: bool = typer.Option(False, "--all", help="Every batch, closed ones included"),
                  output: OutputFormat = OutputOption) -> None:
    """Set the status of batch summaries (the reference's reset-batch-status; `batches reset --status
    PENDING dev` resets the batches failed executions left: a last_error, not COMPLETED). To a closed
    status (FAILED, CANCELLED, ...) the batch's PENDING items go back to NONE, no attempt spent, after the
    batch is cancelled at the provider if it still runs there (best effort)."""
    from embedding_ingest.submission.batch_reset import reset_batches as reset

    configured = workspace.settings().stage
    if stage is not None and stage != configured:
        raise fail(InvalidInputError(f"stage {stage!r} is not this workspace's stage {configured!r} "
                                     "(EMBEDDING_INGEST_STAGE)"), output, code=2)
    if not (ids or from_status or all_batches or stage is not None):
        # Resetting every batch would re-open closed ones (COMPLETED, FAILED...): say so explicitly.
        raise fail(InvalidInputError("name the batches: --ids, --from-status, or --all (or the stage alone, "
                                     "for those failed executions left)"), output, code=2)
    ids = list(dict.fromkeys(i.strip() for given in ids or [] for i in given.split(",") if i.strip()))
    ledger = workspace.ledger()
    left_by_failures = not (ids or from_status or all_batches)
    if left_by_failures:
        targets = [b.batch_id for b in ledger.list_batches()
                   if b.last_error and b.status is not BatchStatus.COMPLETED]
    else:
        targets = ids or [b.batch_id for b in ledger.list_batches(statuses=from_status or None)]
    changed = guarded(output, lambda: reset(ledger, workspace.provider(), targets, status,
                                            provider_retry_limit=workspace.settings().max_provider_retries))
    emit({"status": status.value, "batch_ids": [b.batch_id for b in changed], "count": len(changed),
          "items_released": sum(b.released for b in changed), "batches": changed}, output,
         lambda r: table(f"Reset {r['count']} batches to {r['status']}; {r['items_released']} items back to "
                         "NONE", ["batch_id", "items released", "provider"],
                         [[b.batch_id, b.released, b.note or ""] for b in r["batches"]]))
    released_kinds = sorted({batch_kind(ledger, b.batch_id) for b in changed if b.released})
    if released_kinds:
        hint(output, " && ".join(f"embedding-ingest submit {kind}" for kind in released_kinds))
    elif changed:  # back to an open status: the next execution takes them
        kinds = sorted({batch_kind(ledger, b.batch_id) for b in changed})
        hint(output, " && ".join(f"embedding-ingest start-execution {kind}" for kind in kinds))
    elif left_by_failures:
        hint(output, "no batch was left by a failed execution; embedding-ingest batches list")


def batch_kind(ledger, batch_id: str) -> str:
    summary = ledger.get_batch(batch_id)
    return "line" if summary.batch_type is BatchType.LINE_EMBEDDING else "word"


def ls(prefix: str = typer.Argument("", help="Key prefix"), output: OutputFormat = OutputOption) -> None:
    """List objects in the object store (local directory or S3 bucket)."""
    guarded(output, workspace.require_workspace)
    objects = list(workspace.objects().list(prefix))
    emit({"location": workspace.objects().location, "prefix": prefix, "objects": objects}, output,
         lambda r: table(f"{len(r['objects'])} objects under {r['location']}/{prefix}",
                         ["key", "size", "etag"], [[o.key, o.size, o.etag] for o in r["objects"]]))


def status(output: OutputFormat = OutputOption) -> None:
    """Item counts by kind and embedding status; tokens submitted and billed, and cost so far, per kind."""
    from embedding_ingest.submission.budgets import usage_by_kind

    guarded(output, workspace.require_workspace)
    ledger = workspace.ledger()
    counts = {kind.value: {str(k): v for k, v in ledger.count_items(kind).items()} for kind in ItemKind}
    usage = usage_by_kind(ledger.list_batches(), workspace.settings())
    # Issue 19: provider-side failures (they spend no attempt, but are bounded) and model migrations.
    retries = {kind.value: ledger.provider_retry_counts(kind) for kind in ItemKind}
    migrations = {kind.value: migration.model_dump(mode="json")
                  for kind in ItemKind if (migration := ledger.get_migration(kind)) is not None}
    emit({"items": counts, "usage": [row.model_dump(mode="json") for row in usage],
          "provider_retries": retries, "migrations": migrations}, output, _render_status)


def _render_status(r: dict) -> list:
    tables = [table("Items", ["kind", "status", "count"],
                    [[kind, s, n] for kind, by in r["items"].items() for s, n in sorted(by.items())]),
              table("Tokens and cost", ["kind", "batches", "tokens submitted", "tokens billed",
                                        "cost so far (USD)"],
                    [[u["kind"], u["batches"], u["tokens_submitted"], u["tokens_billed"],
                      f"{u['cost_usd']:.6f}"] for u in r["usage"]]),
              table("Provider-side failures (no attempt spent; bounded by MAX_PROVIDER_RETRIES)",
                    ["kind", "items waiting again", "their retries", "FAILED by the bound"],
                    [[kind, c["items"], c["retries"], c["failed"]]
                     for kind, c in r["provider_retries"].items()])]
    if r["migrations"]:
        tables.append(table("Model migrations", ["kind", "state", "from", "to"],
                            [[kind, m["state"], f"{m['from_model']}/{m['from_dimensions']}",
                              f"{m['to_model']}/{m['to_dimensions']}"]
                             for kind, m in r["migrations"].items()]))
    return tables


def register(app: typer.Typer) -> None:
    app.add_typer(receipts_app, name="receipts")
    app.add_typer(batches_app, name="batches")
    app.command("submit")(submit)
    app.command("ls")(ls)
    app.command("status")(status)
