"""Commands over published snapshots: list versions, roll back, render definitions (query, pull, serve and
verify are in published_commands.py)."""

from __future__ import annotations

import typer

from embedding_ingest.cli import workspace
from embedding_ingest.cli.output import (
    OutputFormat,
    OutputOption,
    emit,
    guarded,
    stderr,
    table,
    when,
)
from embedding_ingest.stores.records import ItemKind

snapshots_app = typer.Typer(help="Published snapshot versions.", no_args_is_help=True)
definitions_app = typer.Typer(help="State machine definitions (ASL).", no_args_is_help=True)


@snapshots_app.command("list")
def list_versions(database: ItemKind = typer.Argument(..., help="line or word", case_sensitive=False),
                  output: OutputFormat = OutputOption) -> None:
    """Kept versions of a database's snapshot, newest first; the current one is marked."""
    guarded(output, workspace.require_workspace)
    ledger = workspace.ledger()
    current = ledger.get_published(database.database)
    versions = ledger.list_versions(database.database)
    rows = [v.model_dump(mode="json") | {"current": bool(current and v.version == current.version)}
            for v in versions]
    emit({"database": database.database, "versions": rows}, output,
         lambda r: table(f"{r['database']} snapshot versions", ["version", "current", "count", "model",
                                                                 "published_at", "parent"],
                         [[v["version"], "*" if v["current"] else "", v["count"], v["model"],
                           when(v["published_at"]), v["parent_version"]] for v in r["versions"]]))


@snapshots_app.command("rollback")
def rollback_version(database: ItemKind = typer.Argument(..., help="line or word", case_sensitive=False),
                     version: str = typer.Argument(...), output: OutputFormat = OutputOption) -> None:
    """Point the published snapshot back at a kept VERSION (under the database's lock).

    Items published only by newer versions stay SUCCESS in the ledger but are not in VERSION: the
    command reports how many (rolling forward again restores them)."""
    from embedding_ingest.snapshots import ids_present, rollback
    from embedding_ingest.snapshots.mirror import refresh_plain_mirror
    from embedding_ingest.steps.lease import HeldLock, unique_owner
    from embedding_ingest.stores.records import EmbeddingStatus

    ledger = workspace.ledger()
    settings = workspace.settings()

    def run():
        with HeldLock(ledger, database.database, unique_owner("cli-rollback", database.database),
                      settings.lock_ttl_seconds) as held:
            moved = rollback(workspace.objects(), ledger, held.lease, database=database.database,
                             version=version)
            refresh_plain_mirror(workspace.objects(), ledger, settings, database.database)
        succeeded = [item.item_id for item in ledger.find_items(database, EmbeddingStatus.SUCCESS)]
        present = ids_present(workspace.objects(), moved, succeeded, settings)
        return moved, len(set(succeeded) - present)

    moved, missing = guarded(output, run)
    if missing and output is not OutputFormat.JSON:
        stderr.print(f"[yellow]{missing} item(s) marked SUCCESS are not in version {moved.version}; "
                     "they are searchable again only after rolling forward.[/]")
    emit({"version": moved, "success_items_not_in_version": missing}, output,
         lambda r: table("Rolled back", ["database", "version", "count", "SUCCESS items not in it"],
                         [[r["version"].database, r["version"].version, r["version"].count,
                           r["success_items_not_in_version"]]]))


@definitions_app.command("render")
def render(kind: ItemKind = typer.Argument(..., help="line or word", case_sensitive=False),
           output: OutputFormat = typer.Option(OutputFormat.JSON, "--output", "-o",
                                               help="json (default: the ASL document) or table (its states)",
                                               case_sensitive=False)
           ) -> None:
    """Print the ASL definition of a workflow (local resource ARNs)."""
    from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn

    definition = build_definition(kind.value, local_resource_arn)
    emit(definition, output, lambda d: table(f"{kind.value} workflow: {len(d['States'])} states from "
                                             f"{d['StartAt']}", ["state", "type", "next"],
                                             [[name, spec["Type"], spec.get("Next") or spec.get("Default")
                                               or ("(end)" if spec.get("End") or spec["Type"] in
                                                   ("Succeed", "Fail") else "")]
                                              for name, spec in d["States"].items()]))


def register(app: typer.Typer) -> None:
    app.add_typer(snapshots_app, name="snapshots")
    app.add_typer(definitions_app, name="definitions")
