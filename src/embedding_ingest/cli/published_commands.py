"""Commands that hand published snapshots to other programs: `query` (through open_snapshot),
`snapshots pull` (a stock Chroma directory), `snapshots serve` (Chroma's own server over it) and
`snapshots verify` (integrity of every object a version is made of)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import typer

from embedding_ingest.cli import workspace
from embedding_ingest.cli.output import OutputFormat, OutputOption, emit, guarded, stderr, table
from embedding_ingest.cli.snapshot_commands import snapshots_app
from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.stores.records import ItemKind

# Shown in the table besides distance and text; --output json carries every metadata field.
DEFAULT_COLUMNS = ("merchant_name", "receipt_id", "line_id", "word_id")


def _json_filter(value: str | None, option: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON ({exc.msg} at column {exc.colno})",
                                 param_hint=option) from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter("must be a JSON object, e.g. '{\"merchant_name\": \"ACME\"}'",
                                 param_hint=option)
    return parsed


def query(kind: ItemKind = typer.Argument(..., help="line or word", case_sensitive=False),
          text: str = typer.Argument(..., help="Text to search for"),
          n: int = typer.Option(10, "-n", "--n-results", min=1),
          where: str | None = typer.Option(None, "--where", help="Chroma metadata filter as JSON, e.g. "
                                           "'{\"merchant_name\": \"ACME\"}' or "
                                           "'{\"receipt_id\": {\"$gt\": 3}}'"),
          where_document: str | None = typer.Option(None, "--where-document",
                                                    help="Chroma document filter as JSON, e.g. "
                                                    "'{\"$contains\": \"TOTAL\"}'"),
          version: str | None = typer.Option(None, "--version", help="A kept version (default: current)"),
          show: list[str] = typer.Option(list(DEFAULT_COLUMNS), "--show",
                                         help="Metadata field to show as a column (repeatable)"),
          output: OutputFormat = OutputOption) -> None:
    """Nearest neighbours of TEXT in the published snapshot (embedded with the snapshot's own model)."""
    from embedding_ingest.consumer import open_snapshot

    guarded(output, workspace.require_workspace)  # a read-only command never creates a workspace

    metadata_filter = _json_filter(where, "--where")
    document_filter = _json_filter(where_document, "--where-document")

    def run():
        with open_snapshot(kind, settings=workspace.settings(), version=version) as snap:
            got = snap.query(query_texts=[text], n_results=n, where=metadata_filter,
                             where_document=document_filter)
            return snap.info, got

    info, got = guarded(output, run)
    rows = [{"id": i, "distance": d, "document": doc or "", "metadata": dict(meta or {})}
            for i, d, doc, meta in zip(got["ids"][0], got["distances"][0], got["documents"][0],
                                       got["metadatas"][0], strict=True)]
    columns = [c for c in show if any(c in row["metadata"] for row in rows)]
    emit({"kind": kind.value, "query": text, "model": info.model, "version": info.version,
          "where": metadata_filter, "where_document": document_filter, "results": rows}, output,
         lambda r: table(f"{kind.value}s nearest to {text!r} (version {info.version})",
                         ["#", "distance", "text", *columns, "id"],
                         [[i + 1, f"{row['distance']:.4f}", row["document"],
                           *(row["metadata"].get(c) for c in columns), row["id"]]
                          for i, row in enumerate(r["results"])]))


def _default_served_dir(kind: ItemKind) -> Path:
    return workspace.settings().cache_dir / kind.database / "served"


@snapshots_app.command("pull")
def pull(kind: ItemKind = typer.Argument(..., help="line or word", case_sensitive=False),
         directory: Path = typer.Argument(..., help="Where to write the Chroma persist directory"),
         version: str | None = typer.Option(None, "--version", help="A kept version (default: current)"),
         output: OutputFormat = OutputOption) -> None:
    """Write the published snapshot as one stock Chroma directory (collection `lines`/`words`).

    Open it with chromadb.PersistentClient(DIRECTORY).get_collection("lines"). Written beside
    DIRECTORY and renamed into place; pulling the version DIRECTORY already holds does nothing."""
    from embedding_ingest.snapshots.pull import pull_version

    def run():
        return pull_version(workspace.objects(), workspace.ledger(), workspace.settings(), kind.database,
                            directory, version)

    report = guarded(output, run)
    emit({"database": kind.database, "collection": report.collection, "version": report.version.version,
          "count": report.count, "segments": report.segments, "directory": str(report.directory),
          "reused": report.reused}, output,
         lambda r: table("Pulled" if not r["reused"] else "Already pulled (nothing to do)",
                         ["collection", "version", "count", "directory"],
                         [[r["collection"], r["version"], r["count"], r["directory"]]]))


def chroma_executable() -> str:
    """The `chroma` CLI of the chromadb package this process runs with (installed beside python)."""
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.is_file() else shutil.which("chroma")
    if found is None:
        raise ConfigurationError("the `chroma` command of the chromadb package is not installed "
                                 f"(looked beside {sys.executable} and on PATH)")
    return found


@snapshots_app.command("serve")
def serve(kind: ItemKind = typer.Argument(..., help="line or word", case_sensitive=False),
          host: str = typer.Option("127.0.0.1", "--host"),
          port: int = typer.Option(8000, "--port", min=1, max=65535),
          directory: Path | None = typer.Option(None, "--dir", help="Pulled directory to serve "
                                                "(default: CACHE/DATABASE/served)"),
          version: str | None = typer.Option(None, "--version", help="A kept version (default: current)")
          ) -> None:
    """Serve the published snapshot with Chroma's own server (`chroma run`), for any Chroma client.

    Pulls first (no work if the directory holds that version), then becomes the Chroma server until
    stopped (Ctrl-C). Restart it to serve a newer version."""
    from embedding_ingest.snapshots.pull import pull_version

    path = directory or _default_served_dir(kind)

    def run():
        executable = chroma_executable()
        report = pull_version(workspace.objects(), workspace.ledger(), workspace.settings(), kind.database,
                              path, version)
        return executable, report

    executable, report = guarded(OutputFormat.TABLE, run)
    stderr.print(f"serving {report.collection} version {report.version.version} ({report.count} records) "
                 f"from {report.directory} at http://{host}:{port}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(executable, [executable, "run", "--path", str(report.directory), "--host", host,
                          "--port", str(port)])


@snapshots_app.command("verify")
def verify(kind: ItemKind | None = typer.Argument(None, help="line or word (default: both)",
                                                  case_sensitive=False),
           all_versions: bool = typer.Option(False, "--all-versions", help="Every kept version, not only "
                                             "the current one"),
           repair_cache: bool = typer.Option(False, "--repair-cache", help="Drop bad local cache entries"),
           output: OutputFormat = OutputOption) -> None:
    """Re-read every object the published version is made of (manifests, segment archives) and check
    sha256 and record counts, and the local cache against them. Exits 1 if anything is bad."""
    from embedding_ingest.snapshots.verify import verify_database

    kinds = [kind] if kind is not None else list(ItemKind)

    def run():
        return [verify_database(workspace.objects(), workspace.ledger(), workspace.settings(), k.database,
                                all_versions=all_versions, repair_cache=repair_cache) for k in kinds]

    reports = guarded(output, run)
    body = {"ok": all(r.ok for r in reports), "databases": [
        {"database": r.database, "ok": r.ok, "versions": r.versions, "segments": r.segments,
         "records": r.records, "problems": [vars(p) for p in r.problems],
         "cache_problems": [vars(p) for p in r.cache_problems], "cache_dropped": r.cache_dropped}
        for r in reports]}
    emit(body, output, _verify_tables)
    if not body["ok"]:
        raise typer.Exit(1)


def _verify_tables(body: dict) -> list:
    summary = table("Snapshot integrity", ["database", "versions", "segments", "records checked", "verdict"],
                    [[d["database"], len(d["versions"]), d["segments"], d["records"],
                      "ok" if d["ok"] else "BAD"] for d in body["databases"]])
    bad = [[d["database"], where, p["key"], p["problem"]] for d in body["databases"]
           for where, found in (("store", d["problems"]), ("cache", d["cache_problems"])) for p in found]
    return [summary, table("Problems", ["database", "where", "key", "problem"], bad)] if bad else [summary]


def register(app: typer.Typer) -> None:
    app.command("query")(query)
