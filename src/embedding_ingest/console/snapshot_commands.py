"""Commands over published snapshots: query, list versions, roll back, render definitions."""

from __future__ import annotations

import uuid

import typer

from embedding_ingest.console import context
from embedding_ingest.console.output import OutputFormat, OutputOption, emit, emit_json, guarded, table
from embedding_ingest.stores.exceptions import LockNotAcquiredError
from embedding_ingest.stores.records import ItemKind

snapshots_app = typer.Typer(help="Published snapshot versions.", no_args_is_help=True)
definitions_app = typer.Typer(help="State machine definitions (ASL).", no_args_is_help=True)


def query(kind: ItemKind = typer.Argument(..., help="line or word"),
          text: str = typer.Argument(..., help="Text to search for"),
          n: int = typer.Option(10, "-n", "--n-results", min=1),
          output: OutputFormat = OutputOption) -> None:
    """Nearest neighbours of TEXT in the published snapshot (embedded with the snapshot's own model)."""
    from embedding_ingest.snapshots import query_published

    provider = context.provider()
    # The caller's model is the provider's; query_published refuses it if the snapshot was built otherwise.
    settings = context.settings().model_copy(update={"embedding_model": provider.model})

    def run():
        vector = provider.embed([text])[0]
        return query_published(context.objects(), context.ledger(), kind.database, vector, n, settings)

    hits = guarded(output, run)
    rows = [{"id": h.id, "distance": h.distance, "document": h.document, "metadata": h.metadata}
            for h in hits]
    emit({"kind": kind.value, "query": text, "model": provider.model, "results": rows}, output,
         lambda r: table(f"{kind.value}s nearest to {text!r}", ["#", "distance", "text", "merchant", "id"],
                         [[i + 1, f"{row['distance']:.4f}", row["document"],
                           row["metadata"].get("merchant_name"), row["id"]]
                          for i, row in enumerate(r["results"])]))


@snapshots_app.command("list")
def list_versions(database: ItemKind = typer.Argument(..., help="line or word"),
                  output: OutputFormat = OutputOption) -> None:
    """Kept versions of a database's snapshot, newest first; the current one is marked."""
    ledger = context.ledger()
    current = ledger.get_published(database.database)
    versions = ledger.list_versions(database.database)
    rows = [v.model_dump(mode="json") | {"current": bool(current and v.version == current.version)}
            for v in versions]
    emit({"database": database.database, "versions": rows}, output,
         lambda r: table(f"{r['database']} snapshot versions", ["version", "current", "count", "model",
                                                                 "published_at", "parent"],
                         [[v["version"], "*" if v["current"] else "", v["count"], v["model"],
                           v["published_at"], v["parent_version"]] for v in r["versions"]]))


@snapshots_app.command("rollback")
def rollback_version(database: ItemKind = typer.Argument(..., help="line or word"),
                     version: str = typer.Argument(...), output: OutputFormat = OutputOption) -> None:
    """Point the published snapshot back at a kept VERSION (under the database's lock)."""
    from embedding_ingest.snapshots import rollback

    ledger = context.ledger()
    settings = context.settings()

    def run():
        owner = f"cli-rollback-{uuid.uuid4()}"
        lease = ledger.acquire_lock(database.database, owner, settings.lock_ttl_seconds)
        if lease is None:
            raise LockNotAcquiredError(f"lock {database.database!r} is held (a final merge is running); "
                                       "retry")
        try:
            return rollback(context.objects(), ledger, lease, database=database.database, version=version)
        finally:
            ledger.release_lock(lease)

    moved = guarded(output, run)
    emit(moved, output, lambda v: table("Rolled back", ["database", "version", "count"],
                                        [[v.database, v.version, v.count]]))


@definitions_app.command("render")
def render(kind: ItemKind = typer.Argument(..., help="line or word")) -> None:
    """Print the ASL definition of a workflow (local resource ARNs)."""
    from embedding_ingest.workflow.builder import build_definition, local_resource_arn

    emit_json(build_definition(kind.value, local_resource_arn))


def register(app: typer.Typer) -> None:
    app.command("query")(query)
    app.add_typer(snapshots_app, name="snapshots")
    app.add_typer(definitions_app, name="definitions")
