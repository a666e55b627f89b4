"""Commands that hand published snapshots to other programs: `query` (through open_snapshot),
`snapshots pull` (a stock Chroma directory), `snapshots serve` (Chroma's own server over it) and
`snapshots verify` (integrity of every object a version is made of)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from embedding_ingest.cli import interrupts, next_steps, workspace
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.errors import CliError
from embedding_ingest.cli.output import (
    OutputFormat,
    OutputOption,
    WideOption,
    emit,
    fail,
    guarded,
    hint,
    kind_argument,
    stderr,
)
from embedding_ingest.cli.snapshot_commands import snapshots_app
from embedding_ingest.cli.tables import Column, fitted, record
from embedding_ingest.exceptions import ConfigurationError, EmbeddingIngestError
from embedding_ingest.stores.records import ItemKind

# Metadata fields shown as extra columns by default (--show); --output json carries every field. The
# receipt, its number and the line/word always show: the metadata keeps the original system's keys,
# `image_id` (the receipt_id of the input file) and `receipt_id` (the receipt's number in it).
DEFAULT_COLUMNS = ("merchant_name",)
VERSION_HELP = "A kept version, or a unique prefix of it of 8+ characters (default: current)"


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


def query(kind: ItemKind = kind_argument(),
          text: str = typer.Argument(..., help="Text to search for (not empty)"),
          n: int = typer.Option(10, "-n", "--n-results", min=1, metavar="N", help="How many results"),
          where: str | None = typer.Option(None, "--where", metavar="JSON",
                                           help="Chroma metadata filter as JSON, e.g. "
                                           "'{\"merchant_name\": \"ACME\"}' or "
                                           "'{\"receipt_id\": {\"$gt\": 3}}'"),
          where_document: str | None = typer.Option(None, "--where-document", metavar="JSON",
                                                    help="Chroma document filter as JSON, e.g. "
                                                    "'{\"$contains\": \"TOTAL\"}'"),
          version: str | None = typer.Option(None, "--version", help=VERSION_HELP),
          show: list[str] = typer.Option(list(DEFAULT_COLUMNS), "--show", metavar="FIELD",
                                         help="Metadata field to show as a column (repeatable)"),
          wide: bool = WideOption, output: OutputFormat = OutputOption) -> None:
    """Nearest neighbours of TEXT in the published snapshot (embedded with the snapshot's own model)."""
    from embedding_ingest.consumer import open_snapshot
    from embedding_ingest.snapshots.exceptions import NothingPublishedError

    if not text.strip():
        raise fail(CliError("the query text is empty (it would match nothing in particular)",
                            try_=f'embedding-ingest query {kind.value} "TOTAL AMOUNT"'), output)
    guarded(output, workspace.require_workspace)  # a read-only command never creates a workspace
    metadata_filter = _json_filter(where, "--where")
    document_filter = _json_filter(where_document, "--where-document")

    def run():
        with open_snapshot(kind, settings=workspace.settings(), version=version) as snap:
            got = snap.query(query_texts=[text], n_results=n, where=metadata_filter,
                             where_document=document_filter)
            return snap.info, got

    try:
        info, got = run()
    except NothingPublishedError as error:
        raise nothing_published(kind, output) from error
    except EmbeddingIngestError as error:
        raise fail(error, output) from error
    rows = [{"id": i, "distance": d, "document": doc or "", "metadata": dict(meta or {})}
            for i, d, doc, meta in zip(got["ids"][0], got["distances"][0], got["documents"][0],
                                       got["metadatas"][0], strict=True)]
    columns = [c for c in show if any(c in row["metadata"] for row in rows)]
    emit({"kind": kind.value, "query": text, "model": info.model, "version": info.version,
          "where": metadata_filter, "where_document": document_filter, "results": rows}, output,
         lambda r: results_table(f"{kind.value}s nearest to {text!r} (version "
                                 f"{workspace.shown_version(kind.database, info.version)}, "
                                 f"{info.model})", kind, r["results"], columns), wide=wide)
    if not rows:  # only a filter can leave nothing: say how to widen it
        hint(output, f'embedding-ingest query {kind.value} {shlex.quote(text)}   (without --where '
                     '/ --where-document)')


def nothing_published(kind: ItemKind, output: OutputFormat) -> typer.Exit:
    """Report that no version of `kind` is published yet (what the user asked for is not there: exit 2,
    error NothingPublishedError), with the workspace's next step to try; returns the Exit to raise."""
    return fail(CliError(f"no {kind.database} published yet (no execution has published a version)",
                         try_=next_steps.for_kind(workspace.ledger(), kind) or next_steps.IMPORT,
                         name="NothingPublishedError"), output)


def results_table(title: str, kind: ItemKind, results: list[dict[str, Any]], extra: list[str]):
    """Query results for people: the text, its distance, the user's own receipt_id (the metadata's
    `image_id`), the receipt's number (the metadata's `receipt_id`), the line/word; the whole Chroma
    id with --wide."""
    word = [Column("word", justify="right", plain=True)] if kind is ItemKind.WORD else []
    return fitted(title, [Column("#", justify="right"), Column("distance"), Column("text", wrap=True),
                          Column("receipt_id"), Column("receipt_number", justify="right", plain=True),
                          Column("line", justify="right", plain=True), *word,
                          *(Column(c, wrap=True, drop=1, plain=True, asked=True) for c in extra),
                          Column("id", wide_only=True)],
                  [[i + 1, f"{row['distance']:.4f}", row["document"], row["metadata"].get("image_id"),
                    row["metadata"].get("receipt_id"), row["metadata"].get("line_id"),
                    *([row["metadata"].get("word_id")] if word else []),
                    *(row["metadata"].get(c) for c in extra), row["id"]]
                   for i, row in enumerate(results)])


def _default_served_dir(kind: ItemKind) -> Path:
    return workspace.settings().cache_dir / kind.database / "served"


@snapshots_app.command("pull")
def pull(kind: ItemKind = kind_argument(),
         directory: Path = typer.Argument(..., help="Where to write the Chroma persist directory"),
         version: str | None = typer.Option(None, "--version", help=VERSION_HELP),
         output: OutputFormat = OutputOption) -> None:
    """Write the published snapshot as one stock Chroma directory (collection `lines`/`words`).

    Open it with chromadb.PersistentClient(DIRECTORY).get_collection("lines"). Written beside
    DIRECTORY and renamed into place; pulling the version DIRECTORY already holds does nothing."""
    from embedding_ingest.snapshots.exceptions import NothingPublishedError
    from embedding_ingest.snapshots.pull import pull_version

    def run():
        try:
            return pull_version(workspace.objects(), workspace.ledger(), workspace.settings(), kind.database,
                                directory, version)
        except NothingPublishedError as error:
            raise nothing_published(kind, output) from error

    report = guarded(output, run)
    emit({"database": kind.database, "collection": report.collection, "version": report.version.version,
          "count": report.count, "segments": report.segments, "directory": str(report.directory),
          "reused": report.reused}, output,
         lambda r: record("Already pulled (nothing to do)" if r["reused"] else "Pulled",
                          [("collection", r["collection"]),
                           ("version", workspace.shown_version(kind.database, r["version"])),
                           ("count", r["count"]),
                           ("directory", r["directory"])]))
    # The directory as the user wrote it: shorter than the resolved one, and right where they are.
    hint(output, f"embedding-ingest snapshots serve {kind.value} --dir {shlex.quote(str(directory))}")


def chroma_executable() -> str:
    """The `chroma` CLI of the chromadb package this process runs with (installed beside python)."""
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.is_file() else shutil.which("chroma")
    if found is None:
        raise ConfigurationError("the `chroma` command of the chromadb package is not installed "
                                 f"(looked beside {sys.executable} and on PATH)")
    return found


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_READY = "listening on address"  # chroma's server log line once it accepts connections


@snapshots_app.command("serve")
def serve(kind: ItemKind = kind_argument(),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this "
                                                               "machine only)"),
          port: int = typer.Option(8000, "--port", min=1, max=65535, metavar="PORT",
                                   help="Port to listen on"),
          directory: Path | None = typer.Option(None, "--dir", help="Pulled directory to serve "
                                                "(default: CACHE/DATABASE/served)"),
          version: str | None = typer.Option(None, "--version", help=VERSION_HELP)
          ) -> None:
    """Serve the published snapshot with Chroma's own server (`chroma run`), for any Chroma client.

    Pulls first (no work if the directory holds that version), then runs the Chroma server until
    stopped (Ctrl-C or SIGTERM). Restart it to serve a newer version. The server has no embedding
    function: query it with vectors (`query_embeddings`), e.g. from open_snapshot(...).embed(texts)."""
    from embedding_ingest.snapshots.exceptions import NothingPublishedError
    from embedding_ingest.snapshots.pull import pull_version

    path = directory or _default_served_dir(kind)

    def run():
        executable = chroma_executable()
        try:
            report = pull_version(workspace.objects(), workspace.ledger(), workspace.settings(),
                                  kind.database, path, version)
        except NothingPublishedError as error:
            raise nothing_published(kind, OutputFormat.TABLE) from error
        return executable, report

    executable, report = guarded(OutputFormat.TABLE, run)
    shown = workspace.shown_version(kind.database, report.version.version)
    banner = (f"serving {report.collection} version {shown} ({report.count} records) "
              f"from {report.directory} at http://{host}:{port} with Chroma's server; Ctrl-C stops it")
    interrupts.on_interrupt(f"snapshots serve {kind.value}", kept=f"the server stopped; {report.directory} "
                            "stays", resume=shlex.join(["embedding-ingest", *output_invocation()]))
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    server = subprocess.Popen([executable, "run", "--path", str(report.directory), "--host", host,
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", start_new_session=False)
    try:
        said = _relay(server, banner)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    if said is not None:
        raise fail(CliError(f"Chroma's server stopped before serving (exit {server.returncode}: {said})",
                            try_=f"embedding-ingest snapshots serve {kind.value} --port {port + 1}", code=1),
                   OutputFormat.TABLE)


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    raise interrupts.Interrupted("SIGTERM")


def _relay(server: subprocess.Popen, banner: str) -> str | None:
    """Read `chroma run`'s output: its banner (ASCII art, a cloud advertisement) is dropped and our
    one line printed once it listens; afterwards only its warnings and errors pass. Returns None once
    it served and stopped, else its last words (it never came up)."""
    ready, early = False, []
    assert server.stdout is not None
    for raw in server.stdout:
        line = _ANSI.sub("", raw).strip()
        if not ready:
            early = [*early[-5:], line] if line else early
            if _READY in line:
                ready = True
                stderr.print(banner, markup=False, highlight=False, soft_wrap=True)
        elif " WARN " in f" {line} " or " ERROR " in f" {line} ":
            stderr.print(line, markup=False, highlight=False, soft_wrap=True)
    server.wait()
    return None if ready else ("; ".join(early[-3:]) or "no output")


@snapshots_app.command("verify")
def verify(kind: ItemKind | None = kind_argument("line or word (default: both)", default=None),
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
    summary = fitted("Snapshot integrity", [Column("database"), Column("versions", justify="right"),
                                            Column("segments", justify="right"),
                                            Column("records checked", justify="right"), Column("verdict")],
                     [[d["database"], len(d["versions"]), d["segments"], d["records"],
                       "ok" if d["ok"] else "BAD"] for d in body["databases"]])
    bad = [[d["database"], where, p["key"], p["problem"]] for d in body["databases"]
           for where, found in (("store", d["problems"]), ("cache", d["cache_problems"])) for p in found]
    problems = fitted("Problems", [Column("database"), Column("where"), Column("key", wrap=True),
                                   Column("problem", wrap=True)], bad)
    return [summary, problems] if bad else [summary]


def output_invocation() -> list[str]:
    from embedding_ingest.cli import output

    return list(output.invocation)


def register(app: typer.Typer) -> None:
    app.command("query", rich_help_panel=Panel.USE, short_help="Nearest lines or words to a text.")(query)
