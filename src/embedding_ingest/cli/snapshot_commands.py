"""Commands over published snapshots: list versions, roll back, render definitions (query, pull, serve and
verify are in published_commands.py)."""

from __future__ import annotations

import json

import typer

from embedding_ingest.cli import next_steps, workspace
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.output import (
    OutputFormat,
    OutputOption,
    WideOption,
    emit,
    guarded,
    hint,
    kind_argument,
    stderr,
    when,
)
from embedding_ingest.cli.tables import Column, fitted, record
from embedding_ingest.stores.records import ItemKind

snapshots_app = typer.Typer(help="Published snapshot versions: list, roll back, pull, serve, verify.",
                            no_args_is_help=True)
definitions_app = typer.Typer(help="State machine definitions (ASL): render ours, run any.",
                              no_args_is_help=True)


@snapshots_app.command("list")
def list_versions(database: ItemKind = kind_argument(),
                  wide: bool = WideOption, output: OutputFormat = OutputOption) -> None:
    """Kept versions of a database's snapshot, newest first; the current one is marked. Before the
    first publish: 'nothing published yet' and the step that leads to one (exit 0, as other lists)."""
    guarded(output, workspace.require_workspace)
    ledger = workspace.ledger()
    current = ledger.get_published(database.database)
    versions = ledger.list_versions(database.database)
    rows = [v.model_dump(mode="json") | {"current": bool(current and v.version == current.version)}
            for v in versions]
    known = [v.version for v in versions]
    emit({"database": database.database, "versions": rows}, output,
         lambda r: fitted(f"{r['database']} snapshot versions (* current)" if r["versions"] else
                          f"nothing published yet for {database.value} (0 versions)",
                          [Column("version", ids=known), Column("current"), Column("count", justify="right"),
                           Column("published"), Column("model", drop=2), Column("parent", ids=known, drop=1)],
                          [[v["version"], "*" if v["current"] else "", v["count"], when(v["published_at"]),
                            v["model"], v["parent_version"]] for v in r["versions"]]), wide=wide)
    if not versions:
        hint(output, next_steps.for_kind(workspace.ledger(), database) or next_steps.IMPORT)


@snapshots_app.command("rollback")
def rollback_version(database: ItemKind = kind_argument(),
                     version: str = typer.Argument(..., help="A kept version, or a unique prefix of one "
                                                             "(see snapshots list)"),
                     output: OutputFormat = OutputOption) -> None:
    """Point the published snapshot back at a kept VERSION (under the database's lock).

    Items published only by newer versions stay SUCCESS in the ledger but are not in VERSION: the
    command reports how many (rolling forward again restores them). VERSION already current: says so
    and changes nothing (exit 0)."""
    from embedding_ingest.snapshots import ids_present, rollback
    from embedding_ingest.snapshots.mirror import refresh_plain_mirror
    from embedding_ingest.snapshots.version_ids import resolve_version
    from embedding_ingest.steps.lease import HeldLock, unique_owner
    from embedding_ingest.stores.records import EmbeddingStatus

    ledger = workspace.ledger()
    settings = workspace.settings()

    def run():
        target = resolve_version(ledger, database.database, version)
        current = ledger.get_published(database.database)
        if current is not None and current.version == target.version:
            moved, changed = current, False
        else:
            changed = True
            with HeldLock(ledger, database.database, unique_owner("cli-rollback", database.database),
                          settings.lock_ttl_seconds) as held:
                moved = rollback(workspace.objects(), ledger, held.lease, database=database.database,
                                 version=target.version)
                refresh_plain_mirror(workspace.objects(), ledger, settings, database.database)
        succeeded = [item.item_id for item in ledger.find_items(database, EmbeddingStatus.SUCCESS)]
        present = ids_present(workspace.objects(), moved, succeeded, settings)
        return moved, len(set(succeeded) - present), changed

    moved, missing, changed = guarded(output, run)
    shown = workspace.shown_version(database.database, moved.version)
    if missing and output is not OutputFormat.JSON:
        stderr.print(f"[yellow]{missing} item(s) marked SUCCESS are not in version {shown}; "
                     "they are searchable again only after rolling forward.[/]")
    title = "Rolled back" if changed else "Already the current version (nothing changed)"
    emit({"version": moved, "changed": changed, "success_items_not_in_version": missing}, output,
         lambda r: record(title, [("database", r["version"].database),
                                  ("version", shown), ("count", r["version"].count),
                                  ("SUCCESS items not in it", r["success_items_not_in_version"])]))
    if changed:
        hint(output, f'embedding-ingest query {database.value} "TEXT"   (now answered from '
                     f'{shown})')
    else:
        hint(output, f"embedding-ingest snapshots list {database.value}   (the kept versions to roll "
                     "back to)")


@definitions_app.command("render")
def render(kind: ItemKind = kind_argument(),
           output: OutputFormat = typer.Option(OutputFormat.JSON, "--output", "-o", case_sensitive=False,
                                               help="json (default: the ASL document) or table (its states)")
           ) -> None:
    """Print the ASL definition of a workflow (local resource ARNs)."""
    from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn

    definition = build_definition(kind.value, local_resource_arn)
    emit(definition, output, lambda d: fitted(f"{kind.value} workflow: {len(d['States'])} states from "
                                              f"{d['StartAt']}", [Column("state"), Column("type"),
                                                                  Column("next", wrap=True)],
                                              [[name, spec["Type"], _next_states(spec)]
                                               for name, spec in d["States"].items()]))


_OPERATORS = {"Equals": "==", "GreaterThan": ">", "LessThan": "<", "GreaterThanEquals": ">=",
              "LessThanEquals": "<="}


def _condition(rule: dict) -> str:
    """A Choice rule as a short condition: `$.total_batches > 0`; compound rules by their operator."""
    for key, value in rule.items():
        if key in ("Variable", "Next"):
            continue
        if key in ("And", "Or", "Not"):
            return key.lower() + "(...)"
        operator = next((symbol for suffix, symbol in sorted(_OPERATORS.items(), key=lambda p: -len(p[0]))
                         if key.removesuffix("Path").endswith(suffix)), key)
        return f"{rule.get('Variable', '')} {operator} {json.dumps(value)}"
    return "rule"


def _next_states(spec: dict) -> str:
    """Where a state goes: its Next, or every Choice branch (condition -> state) and the Default, one
    per line; "(end)" for an end state."""
    if spec["Type"] == "Choice":
        branches = [f"{_condition(rule)} -> {rule['Next']}" for rule in spec.get("Choices", [])]
        return "\n".join([*branches, *([f"otherwise -> {spec['Default']}"] if spec.get("Default") else [])])
    if spec.get("Next"):
        return spec["Next"]
    return "(end)" if spec.get("End") or spec["Type"] in ("Succeed", "Fail") else ""


def register(app: typer.Typer) -> None:
    app.add_typer(snapshots_app, name="snapshots", rich_help_panel=Panel.USE,
                  short_help="Versions: list, roll back, pull, serve, verify.")
    app.add_typer(definitions_app, name="definitions", rich_help_panel=Panel.SETUP,
                  short_help="State machine definitions: render, run.")
