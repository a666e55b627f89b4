"""`embedding-ingest labels apply FILE.jsonl` (issue 23): label changes from a label-validation system,
applied as metadata updates (no re-embedding, no token); the next workflow run publishes them.
The work is submission/labels.py (apply_labels, for programs too)."""

from __future__ import annotations

from pathlib import Path

import typer

from embedding_ingest.cli import workspace
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.errors import EXIT_REJECTED
from embedding_ingest.cli.output import OutputFormat, OutputOption, emit, guarded, hint
from embedding_ingest.cli.tables import FILE_LINE, Column, fitted

labels_app = typer.Typer(help="Labels of lines and words, applied without re-embedding.",
                         no_args_is_help=True)
SHOWN_PROBLEMS = 50


@labels_app.command("apply")
def apply(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                      help="JSONL: {receipt_id, receipt_number?, line_id, word_id?, labels}"),
          output: OutputFormat = OutputOption) -> None:
    """Replace the labels of the lines and words a file names (a line without word_id labels the line).
    Bad lines and unknown items are reported by line number and skipped (exit 3); the rest is applied
    and queued as metadata updates for the next workflow run."""
    from embedding_ingest.submission.labels import apply_labels, describe

    report = guarded(output, lambda: apply_labels(file, workspace.ledger()))
    emit(report, output, lambda r: [
        describe(r) + (f"; {len(r.metadata_batches)} metadata batch(es) queued"
                       if r.metadata_batches else ""),
        *([fitted(f"Skipped lines ({len(r.problems)})",
                  [FILE_LINE, Column("field"), Column("problem", wrap=True)],
                  [[p.line_number, p.field, p.problem] for p in r.problems[:SHOWN_PROBLEMS]])]
          if r.problems else [])])
    if report.metadata_batches:
        hint(output, "embedding-ingest start-execution line --until-idle (and word)")
    elif report.problems:  # nothing queued: fixing the file is what comes next (applied lines are kept)
        hint(output, f"fix the lines listed, then: embedding-ingest labels apply {file}")
    if report.problems:
        raise typer.Exit(EXIT_REJECTED)


def register(app: typer.Typer) -> None:
    app.add_typer(labels_app, name="labels", rich_help_panel=Panel.DATA,
                  short_help="Apply label changes without re-embedding.")
