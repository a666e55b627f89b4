"""`embedding-ingest demo`: the whole job on the embedded default, on a bundled sample of real receipts."""

from __future__ import annotations

import os
import shlex
import shutil
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from embedding_ingest.cli import workspace
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.errors import CliError
from embedding_ingest.cli.output import (
    OutputFormat,
    OutputOption,
    counted,
    emit,
    fail,
    guarded,
    say,
    stderr,
    stdout,
)
from embedding_ingest.cli.tables import Column, fitted
from embedding_ingest.receipts.context import EDGE
from embedding_ingest.stores.records import ItemKind

SAMPLE = "sroie-sample.jsonl"
EXAMPLE_QUERIES = {ItemKind.LINE: "TOTAL AMOUNT", ItemKind.WORD: "CASH"}
MAX_ROUNDS = 8  # the local provider needs a few polls per batch, like the real Batch API; 8 is ample
# Written first into every workspace the demo makes: only a directory holding it (or an empty or
# missing one) is wiped by the next demo, so a mistyped --workspace never deletes anything else.
MARKER = ".embedding-ingest-demo"


def _say(_output: OutputFormat, message: str, *, indent: int = 0) -> None:
    """Progress on stderr (with --output json too: stdout holds only the JSON document), wrapped to
    the terminal's width as start-execution's (output.say)."""
    say(message, indent=indent)


def _export(home: Path, model: str | None) -> str:
    """The closing `export` that points later commands at the workspace: one command, broken with
    ` \\` before its second variable when it is wider than the terminal, so that it pastes whole."""
    variables = [f"EMBEDDING_INGEST_HOME={shlex.quote(str(home.resolve()))}"]
    variables += [f"EMBEDDING_MODEL={model}"] if model else []
    line = "  export " + " ".join(variables)
    if len(line) <= stderr.width:
        return line
    return " \\\n    ".join(["  export " + variables[0], *variables[1:]])


MODELS = {
    "all-MiniLM-L6-v2-int8": "a real small model (all-MiniLM-L6-v2, int8 ONNX) run on this machine, standing "
                             "in for OpenAI's text-embedding-3-small",
    "local-hash-ngram-v1": "a hashing stand-in for OpenAI's model: texts that share letters land close, "
                           "not texts that mean the same",
}


def _refusal(home: Path) -> str | None:
    """Why the demo may not wipe `home` (None when it may: missing, empty, or an earlier demo's)."""
    if home.is_symlink() or (home.exists() and not home.is_dir()):
        return f"{home} is not a directory"
    if not home.exists() or (home / MARKER).is_file() or not any(home.iterdir()):
        return None
    return f"{home} is not empty and not a workspace an earlier demo made (the demo wipes its workspace)"


def _fresh(home: Path, output: OutputFormat) -> None:
    """Wipe `home` (an earlier demo's workspace, or nothing) and mark it as the demo's; refuse any
    other directory, deleting nothing (exit 2)."""
    refused = _refusal(home)
    if refused:
        raise fail(CliError(refused, try_="embedding-ingest demo --workspace NEW_DIR   (a new or empty "
                                          f"directory; or remove {home} yourself)"), output)
    shutil.rmtree(home, ignore_errors=True)
    try:
        home.mkdir(parents=True, exist_ok=True)
        (home / MARKER).write_text("Made by `embedding-ingest demo`: the next demo here deletes this "
                                   "directory's contents.\n", encoding="utf-8")
    except OSError as error:
        raise fail(CliError(f"cannot make the demo's workspace {home} ({error.strerror or error})",
                            try_="embedding-ingest demo --workspace NEW_DIR"), output) from error


def _run_until_published(kind: ItemKind, output: OutputFormat) -> dict[str, Any]:
    """`start-execution KIND --until-idle`: executions until no batch of `kind` is active, on the
    workspace's own ledger, object store and provider."""
    from embedding_ingest.pipeline.run import run_until_idle

    def said(described: dict[str, Any]) -> None:
        _say(output, f"{described['name']}: {described['status']}, {described['summary']['message']}",
             indent=2)

    idle = guarded(output, lambda: run_until_idle(
        kind, workspace.settings(), max_runs=MAX_ROUNDS, on_execution=said, ledger=workspace.ledger(),
        objects=workspace.objects(), provider=workspace.provider()))
    _say(output, f"{kind.value}: {idle.summary['message']}", indent=2)
    return idle.as_json()


def demo(workspace_dir: Path = typer.Option(  # not `workspace`: that is the module of the CLI's ports
             None, "--workspace", metavar="DIR",
             help="Workspace to use, wiped first: a new or empty directory, or an earlier demo's "
                  "(any other is refused, nothing deleted); default $EMBEDDING_INGEST_HOME/demo"),
         max_items_per_batch: int = typer.Option(250, "--max-items-per-batch", min=1, metavar="N",
                                                 help="Requests per batch (small, to show several batches)"),
         model: str = typer.Option("all-MiniLM-L6-v2-int8", "--model", metavar="MODEL",
                                   help="The local provider's model: all-MiniLM-L6-v2-int8 (a real small "
                                        "model) or local-hash-ngram-v1 (the hashing stand-in, faster)"),
         output: OutputFormat = OutputOption) -> None:
    """Import bundled receipts, submit lines and words, run both workflows, show what was published."""
    from embedding_ingest.backends import embedding_model
    from embedding_ingest.consumer import open_snapshot
    from embedding_ingest.receipts.importer import import_receipts
    from embedding_ingest.submission.submit import submit

    home = workspace_dir or Path(os.environ.get("EMBEDDING_INGEST_HOME", ".embedding-ingest")) / "demo"
    if model not in MODELS:
        raise fail(CliError(f"--model {model!r} is not a local model (one of {', '.join(MODELS)})",
                            try_="embedding-ingest demo --model local-hash-ngram-v1"), output)
    _fresh(home, output)
    os.environ["EMBEDDING_INGEST_HOME"] = str(home)
    local = os.environ.get("EMBEDDING_PROVIDER", "local") == "local"
    if local:
        os.environ["EMBEDDING_MODEL"] = model
        os.environ.pop("EMBEDDING_DIMENSIONS", None)
    if local and model == "all-MiniLM-L6-v2-int8":  # an optional extra: say so before anything runs
        from embedding_ingest.providers import minilm

        guarded(output, minilm.check_installed, try_="embedding-ingest demo --model local-hash-ngram-v1")
    workspace.reset()
    workspace.creates_workspace()  # its own, fresh
    used = embedding_model(workspace.settings())
    _say(output, f"embedding with {used}" + (f": {MODELS[used]}" if used in MODELS else ""))

    with resources.as_file(resources.files("embedding_ingest.data") / SAMPLE) as sample:
        report = guarded(output, lambda: import_receipts(
            Path(sample), workspace.ledger(), model=embedding_model(workspace.settings())))
    _say(output, f"imported {counted(report.receipts_imported, 'receipt')}: "
                 f"{counted(report.lines_added, 'line')}, {counted(report.words_added, 'word')} "
                 f"(workspace {home})")
    summary: dict[str, Any] = {"workspace": str(home), "model": used,
                               "receipts_imported": report.receipts_imported}
    provider = workspace.provider()

    def nearest(kind: ItemKind, text: str) -> list[dict[str, Any]]:
        """The example query through the consumer API, as `embedding-ingest query` asks it."""
        with open_snapshot(kind, settings=workspace.settings()) as snap:
            got = snap.query(query_texts=[text], n_results=3, include=["documents", "distances"])
        # What each result's embedding holds: a word is embedded with its row neighbours (the
        # ledger's embed_text), which is why words printed beside the query come up.
        items = workspace.ledger().get_items(got["ids"][0])
        return [{"id": i, "text": doc or "", "distance": d,
                 "embedded": " ".join(t for t in items[i].embed_text.split() if t != EDGE)
                 if i in items else None}
                for i, doc, d in zip(got["ids"][0], got["documents"][0], got["distances"][0], strict=True)]

    for kind in ItemKind:
        submitted = guarded(output, lambda k=kind: submit(k, workspace.ledger(), provider,
                                                          max_items_per_batch=max_items_per_batch))
        _say(output, f"submitted {counted(submitted.items_submitted, kind.value)} "
                     f"in {counted(len(submitted.batches), 'batch')}")
        runs = _run_until_published(kind, output)
        published = workspace.ledger().get_published(kind.database)
        query = EXAMPLE_QUERIES[kind]
        results = guarded(output, lambda k=kind, q=query: nearest(k, q))
        summary[kind.database] = {
            "batches_submitted": len(submitted.batches), "items_submitted": submitted.items_submitted,
            "executions": [{"name": e["name"], "status": e["status"], "error": e.get("error"),
                            "summary": e["summary"]} for e in runs["executions"]],
            "summary": runs["summary"], "published_version": published.version if published else None,
            "published_embeddings": published.count if published else 0,
            "example_query": query, "results": results}

    def render(s: dict[str, Any]) -> list[Any]:
        out = [fitted("Published snapshots",
                      [Column("database"), Column("version"), Column("embeddings", justify="right"),
                       Column("submitted", justify="right"), Column("executions", justify="right")],
                      [[db, workspace.shown_version(db, s[db]["published_version"]) or "",
                        s[db]["published_embeddings"],
                        s[db]["items_submitted"], len(s[db]["executions"])] for db in ("lines", "words")])]
        out.append(fitted(f"lines: nearest to {s['lines']['example_query']!r}",
                          [Column("#", justify="right"), Column("distance"), Column("text", wrap=True),
                           Column("id", wide_only=True)],
                          [[i + 1, f"{r['distance']:.4f}", r["text"], r["id"]]
                           for i, r in enumerate(s["lines"]["results"])]))
        query = s["words"]["example_query"]
        out.append(fitted(f"words: nearest to {query!r}",
                          [Column("#", justify="right"), Column("distance"), Column("text", wrap=True),
                           Column("embedded with its row", wrap=True), Column("id", wide_only=True)],
                          [[i + 1, f"{r['distance']:.4f}", r["text"], r["embedded"], r["id"]]
                           for i, r in enumerate(s["words"]["results"])]))
        said = (f"A word is embedded with up to two words each side of it in its row, so words printed "
                f"beside {query!r} come close to it.")
        out.append(Text("\n".join(textwrap.wrap(said, width=max(stdout.width, 20)))))
        return out

    emit(summary, output, render)
    # The model too: the workspace's snapshots are of that model, and a later submit with another
    # would be refused by the model guard.
    _say(output, "to look around this workspace:")
    stderr.print(_export(home, used if local else None), markup=False, highlight=False, soft_wrap=True)
    complete = all(summary[k.database]["published_embeddings"] == summary[k.database]["items_submitted"]
                   for k in ItemKind)
    if not complete:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo", rich_help_panel=Panel.RUN, short_help="The whole job on bundled receipts.")(demo)
