"""`migrate KIND`: move a published kind to another embedding model or width (issue 19;
embedding_ingest/migration/), and `items requeue`: send FAILED items back to be embedded again."""

from __future__ import annotations

import typer

from embedding_ingest.cli import workspace
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.errors import CliError
from embedding_ingest.cli.output import OutputFormat, OutputOption, counted, emit, fail, guarded, hint
from embedding_ingest.cli.tables import record as record_view
from embedding_ingest.stores.records import EmbeddingStatus, ItemKind

items_app = typer.Typer(help="Lines and words in the ledger.", no_args_is_help=True)


def migrate(kind: ItemKind = typer.Argument(..., help="line or word", case_sensitive=False),
            model: str = typer.Option(None, "--model", help="Target model (default: EMBEDDING_MODEL)"),
            dimensions: int = typer.Option(None, "--dimensions", min=1,
                                           help="Target width (default: EMBEDDING_DIMENSIONS, else the "
                                                "model's native one)"),
            dry_run: bool = typer.Option(False, "--dry-run", help="Say what it would re-embed and cost; "
                                                                  "change nothing"),
            rollback: bool = typer.Option(False, "--rollback",
                                          help="Switch back to the version the migration replaced"),
            output: OutputFormat = OutputOption) -> None:
    """Re-embed every line/word with another model or width, building the new snapshot beside the
    published one while queries keep using it, and switch when all is embedded (rerun to resume or to
    switch; --rollback switches back)."""
    guarded(output, workspace.require_workspace)
    if rollback:
        _rollback(kind, dry_run, output)
        return
    from embedding_ingest.migration.start import plan_migration, start_or_resume, target_of
    from embedding_ingest.submission.budgets import price_per_million

    settings, ledger = workspace.settings(), workspace.ledger()
    target = guarded(output, lambda: target_of(settings, model, dimensions))
    plan = guarded(output, lambda: plan_migration(ledger, kind, target))
    price, priced_as = price_per_million(plan.to_model, settings)
    result = {"kind": kind.value, "dry_run": dry_run, "from_model": plan.from_model,
              "from_dimensions": plan.from_dimensions, "to_model": plan.to_model,
              "to_dimensions": plan.to_dimensions, "items_to_embed": plan.items, "tokens": plan.tokens,
              "price_per_million_usd": price, "priced_as": priced_as,
              "estimated_cost_usd": round(plan.tokens * price / 1_000_000, 6), "state": plan.state}
    if not dry_run:
        record = guarded(output, lambda: start_or_resume(ledger, kind, target))
        result.update(state=record.state.value, requeued=record.requeued, staging_pointer=record.staging)
        result.update(_switch(kind, output))
    emit(result, output, _render)
    hint(output, _next(kind, result))


def _switch(kind: ItemKind, output: OutputFormat) -> dict:
    """Switch now if everything is embedded already (a rerun after the last batch, or after a crash)."""
    from embedding_ingest.migration.switch import try_switch
    from embedding_ingest.steps.lease import HeldLock, unique_owner

    settings, ledger = workspace.settings(), workspace.ledger()

    def attempt():
        with HeldLock(ledger, kind.database, unique_owner("cli-migrate", kind.database),
                      settings.lock_ttl_seconds) as held:
            return try_switch(workspace.objects(), ledger, held.lease, kind, settings)

    check = guarded(output, attempt)
    record = ledger.get_migration(kind)
    return {"state": record.state.value if record else None, "switched": check.switched,
            "waiting_for": check.waiting_for}


def _next(kind: ItemKind, result: dict) -> str:
    if result["dry_run"]:
        return (f"embedding-ingest migrate {kind.value} --model {result['to_model']} "
                f"--dimensions {result['to_dimensions']}")
    if result.get("switched"):
        return f"embedding-ingest query {kind.value} TEXT (now answered by {result['to_model']})"
    return (f"EMBEDDING_MODEL={result['to_model']} EMBEDDING_DIMENSIONS={result['to_dimensions']} "
            f"embedding-ingest submit {kind.value} && embedding-ingest start-execution {kind.value} "
            "--until-idle")


def _render(result: dict):
    """One migration, read vertically (two model names side by side pass 80 columns)."""
    title = ("Migration plan (nothing changed)" if result["dry_run"] else
             f"Migration {result.get('state')}" + (f": waiting for {result['waiting_for']}"
                                                  if result.get("waiting_for") else ""))
    return record_view(title, [("kind", result["kind"]),
                               ("from", f"{result['from_model']}/{result['from_dimensions']}"),
                               ("to", f"{result['to_model']}/{result['to_dimensions']}"),
                               ("items to embed", result["items_to_embed"]), ("tokens", result["tokens"]),
                               ("estimated cost", f"{result['estimated_cost_usd']:.6f} USD")])


def _rollback(kind: ItemKind, dry_run: bool, output: OutputFormat) -> None:
    from embedding_ingest.migration.switch import plan_rollback, roll_back
    from embedding_ingest.steps.lease import HeldLock, unique_owner
    from embedding_ingest.submission.budgets import cost_usd

    settings, ledger, objects = workspace.settings(), workspace.ledger(), workspace.objects()
    plan = guarded(output, lambda: plan_rollback(objects, ledger, kind, settings))
    record = plan.record
    result = {"kind": kind.value, "dry_run": dry_run, "restores_version": plan.restores.version,
              "model": f"{record.from_model}/{record.from_dimensions}", "items_to_embed": len(plan.lacking),
              "tokens": plan.tokens, "estimated_cost_usd": round(cost_usd(plan.tokens, record.from_model,
                                                                          settings), 6)}
    if not dry_run:
        def run():
            with HeldLock(ledger, kind.database, unique_owner("cli-migrate-rollback", kind.database),
                          settings.lock_ttl_seconds) as held:
                return roll_back(objects, ledger, held.lease, plan, settings)

        result["version"] = guarded(output, run).version
    emit(result, output, lambda r: record_view(
        "Rollback plan (nothing changed)" if r["dry_run"] else "Rolled back",
        [("kind", r["kind"]), ("version", r["restores_version"]), ("model", r["model"]),
         ("items to embed again", r["items_to_embed"]), ("tokens", r["tokens"]),
         ("estimated cost", f"{r['estimated_cost_usd']:.6f} USD")]))
    hint(output, f"embedding-ingest migrate {kind.value} --rollback" if dry_run else
         f"EMBEDDING_MODEL={record.from_model} EMBEDDING_DIMENSIONS={record.from_dimensions} "
         f"embedding-ingest submit {kind.value}")


@items_app.command("requeue")
def requeue(kind: ItemKind = typer.Argument(..., help="line or word", case_sensitive=False),
            failed: bool = typer.Option(False, "--failed", help="Every FAILED item of the kind"),
            output: OutputFormat = OutputOption) -> None:
    """Send FAILED items back to NONE (attempts and provider retries reset), for the next submit."""
    guarded(output, workspace.require_workspace)
    if not failed:
        raise fail(CliError("say which items (--failed: every FAILED one of the kind)",
                            try_=f"embedding-ingest items requeue {kind.value} --failed"), output)
    moved = guarded(output, lambda: workspace.ledger().requeue_items(
        kind, EmbeddingStatus.FAILED, "queued again by `items requeue --failed`"))
    emit({"kind": kind.value, "requeued": moved}, output,
         lambda r: f"{counted(r['requeued'], kind.value)} back to NONE (attempts and provider retries reset)")
    if moved:
        hint(output, f"embedding-ingest submit {kind.value}")


def register(app: typer.Typer) -> None:
    app.command("migrate", rich_help_panel=Panel.RUN,
                short_help="Change the embedding model: build the new snapshot beside the old.")(migrate)
    app.add_typer(items_app, name="items", rich_help_panel=Panel.MONITOR)
