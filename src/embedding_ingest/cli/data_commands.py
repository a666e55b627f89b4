"""Commands over receipts, submission, batch summaries and the object store."""

from __future__ import annotations

import typer

from embedding_ingest.cli import next_steps, workspace
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.errors import EXIT_REJECTED, CliError
from embedding_ingest.cli.output import (
    OutputFormat,
    OutputOption,
    WideOption,
    counted,
    emit,
    fail,
    guarded,
    hint,
    kind_argument,
    progress,
    when,
)
from embedding_ingest.cli.tables import Column, fitted
from embedding_ingest.stores.records import (
    BatchOperation,
    BatchStatus,
    BatchSummary,
    BatchType,
    EmbeddingStatus,
    ItemKind,
)

receipts_app = typer.Typer(help="Import and delete receipts.", no_args_is_help=True)
batches_app = typer.Typer(help="Batch summaries: list, show one, reset their status.", no_args_is_help=True)

EXIT_SOME_REJECTED = EXIT_REJECTED  # the old name, for importers


def batch_ids() -> list[str]:
    """Every batch id in the ledger: the universe short id prefixes must be unique in."""
    return [b.batch_id for b in workspace.ledger().list_batches()]


def resolve_batch_id(given: str, known: list[str] | None = None) -> str:
    """A whole batch id, or a prefix of exactly one (as tables show them); CliError (exit 2) naming
    the candidates when it is ambiguous, or when no batch starts with it."""
    known = batch_ids() if known is None else known
    if given in known:
        return given
    matches = [batch_id for batch_id in known if batch_id.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(m[:12] for m in matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise CliError(f"batch id {given!r} is ambiguous ({len(matches)} batches start with it: {shown})",
                       try_="embedding-ingest batches list --wide", name="AmbiguousBatchId")
    raise CliError(f"no batch {given!r} (no batch id starts with it)", try_="embedding-ingest batches list",
                   name="BatchNotFoundError")


def batch_type_label(batch: BatchSummary) -> str:
    """"line", "word", or "line delete" for a deletion batch: what a person needs from batch_type."""
    kind = "line" if batch.batch_type.value.startswith("LINE") else "word"
    return kind if batch.operation is BatchOperation.EMBED else f"{kind} {batch.operation.value}"


def submit(kind: ItemKind = kind_argument(),
           max_items_per_batch: int = typer.Option(None, "--max-items-per-batch", min=1, metavar="N",
                                                   help="Requests per batch (default 1000, max 50000)"),
           max_batches: int = typer.Option(None, "--max-batches", min=1, metavar="N",
                                           help="Submit at most N batches now; the rest wait for the next "
                                                "submit (default: as many as the budgets allow)"),
           max_tokens_per_batch: int = typer.Option(None, "--max-tokens-per-batch", min=1, metavar="N",
                                                    help="Input tokens per batch (MAX_TOKENS_PER_BATCH)"),
           dry_run: bool = typer.Option(False, "--dry-run",
                                        help="Plan the batches and estimate tokens and cost; change nothing"),
           wide: bool = WideOption, output: OutputFormat = OutputOption) -> None:
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
    known = batch_ids()
    emit({**report.model_dump(mode="json"), **report.totals()}, output,
         lambda r: render_submit_report(r, known), wide=wide)
    if dry_run and report.batches:
        hint(output, f"embedding-ingest submit {kind.value}   (the same, for real)")
    elif report.batches:
        hint(output, f"embedding-ingest start-execution {kind.value} --until-idle")
    else:
        hint(output, next_steps.for_kind(workspace.ledger(), kind) or next_steps.IMPORT)


@batches_app.command("list")
def list_batches(status: list[BatchStatus] = typer.Option(
                     None, "--status", case_sensitive=False, metavar="STATUS",
                     help="Only batches in this status (repeatable): pending, in_progress, completed, ..."),
                 kind: ItemKind = typer.Option(None, "--type", case_sensitive=False, metavar="KIND",
                                               help="Only line or word batches"),
                 wide: bool = WideOption, output: OutputFormat = OutputOption) -> None:
    """Batch summaries, oldest first (ids shortened to a unique prefix; --wide shows them whole)."""
    guarded(output, workspace.require_workspace)
    batches = workspace.ledger().list_batches(statuses=status or None,
                                            batch_type=kind.batch_type if kind else None)
    known = batch_ids()
    emit({"batches": batches, "count": len(batches)}, output, lambda r: batches_table(r["batches"], known),
         wide=wide)
    if not batches:
        filters = " ".join([*(f"--status {s.value.lower()}" for s in status or []),
                            *([f"--type {kind.value}"] if kind else [])])
        hint(output, "embedding-ingest batches list" if filters else next_steps.overall(workspace.ledger()))


def batches_table(batches: list[BatchSummary], known: list[str]):
    """`batches list` at the terminal's width: provider status and batch id go first, then the time."""
    return fitted(counted(len(batches), "batch"),
                  [Column("batch", ids=known), Column("type"), Column("status"),
                   Column("items", justify="right"), Column("updated", drop=2), Column("provider", drop=3),
                   Column("provider batch", drop=4), Column("last error", wrap=True, drop=1)],
                  [[b.batch_id, batch_type_label(b), b.status.value, b.item_count,
                    when(b.updated_at or b.submitted_at), b.provider_status, b.provider_batch_id,
                    b.last_error] for b in batches])


@batches_app.command("reset")
def reset_batches(stage: str = typer.Argument(None, metavar="STAGE",
                                              help="The stage (EMBEDDING_INGEST_STAGE, default dev); alone, "
                                                   "it selects the batches failed executions left"),
                  status: BatchStatus = typer.Option(..., "--status", case_sensitive=False, metavar="STATUS",
                                                     help="Status to set (pending, failed, ...)"),
                  ids: list[str] = typer.Option(None, "--ids", metavar="IDS",
                                                help="Batch ids or unique prefixes: --ids A,B or --ids A "
                                                     "--ids B"),
                  from_status: list[BatchStatus] = typer.Option(None, "--from-status", metavar="STATUS",
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
        raise fail(CliError(f"stage {stage!r} is not this workspace's stage {configured!r} "
                            "(EMBEDDING_INGEST_STAGE)", try_=f"embedding-ingest batches reset {configured}"),
                   output)
    if not (ids or from_status or all_batches or stage is not None):
        # Resetting every batch would re-open closed ones (COMPLETED, FAILED...): say so explicitly.
        raise fail(CliError("name the batches to reset (resetting all would re-open closed ones)",
                            try_="embedding-ingest batches reset --status STATUS --ids ID (or --from-status, "
                                 "or --all, or the stage alone for those failed executions left)"), output)
    given = list(dict.fromkeys(i.strip() for text in ids or [] for i in text.split(",") if i.strip()))
    ledger = workspace.ledger()
    left_by_failures = not (given or from_status or all_batches)
    if left_by_failures:
        targets = [b.batch_id for b in ledger.list_batches()
                   if b.last_error and b.status is not BatchStatus.COMPLETED]
    elif given:
        known = batch_ids()
        targets = [guarded(output, lambda g=g: resolve_batch_id(g, known)) for g in given]
    else:
        targets = [b.batch_id for b in ledger.list_batches(statuses=from_status or None)]
    changed = guarded(output, lambda: reset(ledger, workspace.provider(), targets, status,
                                            provider_retry_limit=workspace.settings().max_provider_retries))
    emit({"status": status.value, "batch_ids": [b.batch_id for b in changed], "count": len(changed),
          "items_released": sum(b.released for b in changed), "batches": changed}, output,
         lambda r: fitted(f"Reset {counted(r['count'], 'batch')} to {r['status']}; "
                          f"{counted(r['items_released'], 'item')} back to NONE",
                          [Column("batch", ids=batch_ids()), Column("items released", justify="right"),
                           Column("provider", wrap=True)],
                          [[b.batch_id, b.released, b.note or ""] for b in r["batches"]]))
    released_kinds = sorted({batch_kind(ledger, b.batch_id) for b in changed if b.released})
    if released_kinds:
        hint(output, " && ".join(f"embedding-ingest submit {kind}" for kind in released_kinds))
    elif changed:  # back to an open status: the next execution takes them
        kinds = sorted({batch_kind(ledger, b.batch_id) for b in changed})
        hint(output, " && ".join(f"embedding-ingest start-execution {kind}" for kind in kinds))
    elif left_by_failures:
        hint(output, "no batch was left by a failed execution; embedding-ingest batches list")
    else:
        hint(output, next_steps.overall(ledger))


def batch_kind(ledger, batch_id: str) -> str:
    summary = ledger.get_batch(batch_id)
    return "line" if summary.batch_type is BatchType.LINE_EMBEDDING else "word"


def status(output: OutputFormat = OutputOption) -> None:
    """Item counts by kind and embedding status; tokens submitted and billed, and cost so far, per kind."""
    from embedding_ingest.submission.budgets import usage_by_kind

    guarded(output, workspace.require_workspace)
    ledger = workspace.ledger()
    settings = workspace.settings()
    counts = {kind.value: {str(k): v for k, v in ledger.count_items(kind).items()} for kind in ItemKind}
    usage = usage_by_kind(ledger.list_batches(), settings)
    # Issue 19: provider-side failures (they spend no attempt, but are bounded) and model migrations.
    retries = {kind.value: ledger.provider_retry_counts(kind) for kind in ItemKind}
    migrations = {kind.value: migration.model_dump(mode="json")
                  for kind in ItemKind if (migration := ledger.get_migration(kind)) is not None}
    priced = " (at OpenAI's batch price; the local provider is free)" if settings.provider == "local" else ""
    emit({"items": counts, "usage": [row.model_dump(mode="json") for row in usage],
          "provider_retries": retries, "migrations": migrations}, output, lambda r: _render_status(r, priced))
    hint(output, next_steps.overall(ledger))


def _render_status(r: dict, priced: str) -> list:
    statuses = [s.value for s in EmbeddingStatus]
    rare = ("FAILED", "DELETING")  # columns that give way first, blank when 0
    tables = [fitted("Items by embedding status",
                     [Column("kind"),
                      *(Column(s, justify="right", drop=1 if s in rare else 0) for s in statuses)],
                     [[kind, *(by.get(s) or (None if s in rare else 0) for s in statuses)]
                      for kind, by in r["items"].items()]),
              fitted("Tokens and cost" + priced,
                     [Column("kind"), Column("batches", justify="right"),
                      Column("tokens submitted", justify="right"),
                      Column("tokens billed", justify="right"), Column("cost (USD)", justify="right")],
                     [[u["kind"], u["batches"], f"{u['tokens_submitted']:,}", f"{u['tokens_billed']:,}",
                       f"{u['cost_usd']:.6f}"] for u in r["usage"]]),
              fitted("Provider-side failures (no attempt spent; bounded by MAX_PROVIDER_RETRIES)",
                     [Column("kind"), Column("items waiting again", justify="right"),
                      Column("their retries", justify="right"),
                      Column("FAILED by the bound", justify="right")],
                     [[kind, c["items"], c["retries"], c["failed"]]
                      for kind, c in r["provider_retries"].items()])]
    if r["migrations"]:
        tables.append(fitted("Model migrations", [Column("kind"), Column("state"), Column("from", wrap=True),
                                                  Column("to", wrap=True)],
                             [[kind, m["state"], f"{m['from_model']}/{m['from_dimensions']}",
                               f"{m['to_model']}/{m['to_dimensions']}"]
                              for kind, m in r["migrations"].items()]))
    return tables


def register(app: typer.Typer) -> None:
    app.add_typer(receipts_app, name="receipts", rich_help_panel=Panel.DATA,
                  short_help="Import receipts (JSONL), delete receipts.")
    app.command("submit", rich_help_panel=Panel.DATA,
                short_help="Send waiting lines or words as batches.")(submit)
    app.add_typer(batches_app, name="batches", rich_help_panel=Panel.MONITOR,
                  short_help="Batch summaries: list, show, reset.")
    app.command("status", rich_help_panel=Panel.MONITOR,
                short_help="Items by status; tokens and cost so far.")(status)
