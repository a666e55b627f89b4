"""`receipts import` (incremental sync, `--sync` for full cleanup), `receipts delete`, and
`batches show` (issue 10)."""

from __future__ import annotations

from pathlib import Path

import typer

from embedding_ingest.cli import next_steps, workspace
from embedding_ingest.cli.data_commands import batches_app, receipts_app, resolve_batch_id
from embedding_ingest.cli.errors import EXIT_REJECTED, EXIT_USAGE, CliError
from embedding_ingest.cli.output import (
    OutputFormat,
    OutputOption,
    counted,
    emit,
    fail,
    guarded,
    hint,
    when,
)
from embedding_ingest.cli.tables import FILE_LINE, Column, fitted, record
from embedding_ingest.receipts.importer import describe_metadata_changes
from embedding_ingest.stores.records import ItemKind

SHOWN_IN_TABLES = 50  # rows of skipped items / clamped boxes in the table view (JSON lists every one)


@receipts_app.command("import")
def import_receipts(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                                help="JSONL file, one receipt per line "
                                                     "(format: tests/data/README.md)"),
                    sync: bool = typer.Option(False, "--sync", help="The file is the whole truth: "
                                              "receipts absent from it are deleted"),
                    output: OutputFormat = OutputOption) -> None:
    """Load receipts from a JSONL file: new items are added, changed ones re-queued, vanished ones
    deleted from the next published version; unchanged ones cost nothing. Bad records are reported
    and skipped (exit 3; exit 2 when every record was rejected, or when no line is a JSON object: then
    nothing is created); bad lines or words are skipped with their reason."""
    from embedding_ingest.backends import embedding_model
    from embedding_ingest.receipts.importer import import_receipts as run_import
    from embedding_ingest.receipts.importer import require_json_records

    settings = workspace.settings()
    guarded(output, lambda: require_json_records(file))  # a file with no JSON object: an error, no workspace
    workspace.creates_workspace()  # the command that starts one (every other refuses a missing one)

    def run():
        report = run_import(file, workspace.ledger(), model=embedding_model(settings), sync=sync,
                            tolerance=settings.receipt_box_tolerance)
        return report, *_queue_batches()

    report, queued, metadata_batches = guarded(output, run)
    emit({**report.model_dump(mode="json"), "deletion_batches": queued, "metadata_batches": metadata_batches},
         output, lambda _: _render_import(report, queued, metadata_batches))
    hint(output, next_steps.overall(workspace.ledger()))
    if report.errors:
        # 3 says "the rest was done": with every record rejected (and nothing deleted) nothing was, and
        # the file itself is the bad input
        raise typer.Exit(EXIT_REJECTED if report.receipts_imported or report.receipts_deleted
                         else EXIT_USAGE)


@receipts_app.command("delete")
def delete_receipts(receipt_ids: list[str] = typer.Argument(None, metavar="RECEIPT_ID",
                                                           help="receipt_id values, as in the file",
                                                           show_default=False),
                    file: Path = typer.Option(None, "--file", exists=True, dir_okay=False, readable=True,
                                              help="A file of receipt ids, one per line"),
                    output: OutputFormat = OutputOption) -> None:
    """Remove receipts: their lines and words leave the active set and their ids are removed from the
    next published version (after the next workflow runs)."""
    from embedding_ingest.receipts.importer import delete_receipts as run_delete

    ids = list(receipt_ids or [])
    if file is not None:
        ids += [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not ids:
        raise fail(CliError("name the receipts to delete", try_="embedding-ingest receipts delete "
                            "RECEIPT_ID... (or --file FILE)"), output)

    def run():
        unknown, report = run_delete(workspace.ledger(), ids)
        return unknown, report, _queue_batches()[0]

    unknown, report, queued = guarded(output, run)
    result = {"receipts_deleted": report.receipts_deleted, "lines_removed": report.lines_removed,
              "words_removed": report.words_removed, "unknown_receipt_ids": unknown,
              "deletion_batches": queued}
    emit(result, output, lambda r: [
        record(f"Deleted {counted(len(r['receipts_deleted']), 'receipt')}",
               [("lines removed", r["lines_removed"]), ("words removed", r["words_removed"]),
                ("deletion batches", ", ".join(r["deletion_batches"]) or "-")]),
        *([f"[yellow]no receipt with id[/] {', '.join(unknown)}"] if unknown else [])])
    hint(output, next_steps.overall(workspace.ledger()))
    if unknown:
        raise typer.Exit(EXIT_REJECTED)


@batches_app.command("show")
def show_batch(batch_id: str = typer.Argument(..., help="Batch id, or a unique prefix of one"),
               output: OutputFormat = OutputOption) -> None:
    """One batch summary in full, with the output lines whose custom_id was not in the batch."""
    guarded(output, workspace.require_workspace)  # a read-only command never creates a workspace
    summary = workspace.ledger().get_batch(guarded(output, lambda: resolve_batch_id(batch_id)))
    emit(summary, output, lambda s: [
        # times as in every table (ISO-8601, local or --utc); JSON keeps the epoch seconds
        record(None, [(name, when(value) if name.endswith("_at") else
                       ", ".join(value) if isinstance(value, list) else value)
                      for name, value in s.model_dump(mode="json").items() if name != "unknown_custom_ids"]),
        fitted(f"{len(s.unknown_custom_ids)} unknown custom_id(s) in the output", [Column("custom_id")],
               [[i] for i in s.unknown_custom_ids]) if s.unknown_custom_ids
        else "no output line with a custom_id outside this batch"])


def _queue_batches() -> tuple[list[str], list[str]]:
    """Ids of the deletion batches and metadata batches (issue 23) queued for the next run."""
    from embedding_ingest.submission.deletions import queue_deletions
    from embedding_ingest.submission.metadata_updates import queue_metadata_updates

    ledger = workspace.ledger()
    return ([summary.batch_id for kind in ItemKind for summary in queue_deletions(kind, ledger)],
            [summary.batch_id for kind in ItemKind for summary in queue_metadata_updates(kind, ledger)])


def _all_unchanged(r) -> bool:
    """Every receipt of the file was imported before and nothing in it changed (no item added, changed,
    removed or re-labelled, no record rejected or receipt deleted)."""
    changes = (r.lines_added, r.words_added, r.lines_changed, r.words_changed, r.lines_removed,
               r.words_removed, r.lines_requeued_by_neighbours, r.words_requeued_by_neighbours,
               r.lines_metadata_changed, r.words_metadata_changed, r.items_relabelled,
               r.items_place_changed, r.items_section_changed, len(r.receipts_deleted), len(r.errors),
               r.receipts_rejected, r.items_skipped, r.boxes_clamped)
    return bool(r.receipts_imported) and not any(changes) and r.sync_deletions_refused is None


def _render_import(r, queued: list[str], metadata_batches: list[str]) -> list:
    counts = [("records read", r.records_read), ("receipts imported", r.receipts_imported),
              ("receipts rejected", r.receipts_rejected), ("lines added", r.lines_added),
              ("words added", r.words_added), ("unchanged (not paid again)", r.items_already_present),
              ("lines changed", r.lines_changed), ("words changed", r.words_changed),
              ("lines removed", r.lines_removed), ("words removed", r.words_removed),
              ("items skipped", r.items_skipped), ("boxes clamped", r.boxes_clamped),
              ("tokens", r.tokens), ("items truncated", r.truncated_items)]
    if _all_unchanged(r) and not queued and not metadata_batches:
        # A re-import of the same receipts: nothing was added, changed, tokenized for pay or queued.
        return [record(f"Nothing new in {r.source_file}",
                       [("records read", f"{r.records_read:,}"),
                        ("receipts already imported", f"{r.receipts_imported:,}"),
                        ("unchanged (not paid again)", f"{r.items_already_present:,}")]),
                f"0 new: {counted(r.receipts_imported, 'receipt')} already imported, unchanged "
                "(nothing to submit or pay again)"]
    # records read always shows, 0 included: an empty file says so rather than nothing at all.
    parts: list = [record(f"Imported {r.source_file}", [(name, f"{n:,}") for name, n in counts
                                                        if n or name == "records read"])]
    if not r.records_read:
        parts.append(f"[yellow]no record in {r.source_file}[/] (empty, or only blank lines): "
                     "nothing imported")
    for count, kind, what in ((r.lines_requeued_by_neighbours, "line", "a neighbouring row"),
                              (r.words_requeued_by_neighbours, "word", "a neighbouring word")):
        if count:
            parts.append(f"{counted(count, kind)} re-queued because {what} changed")
    if r.receipts_deleted:
        parts.append(f"{len(r.receipts_deleted)} receipt(s) absent from the file deleted: "
                     + ", ".join(r.receipts_deleted[:10]) + (" ..." if len(r.receipts_deleted) > 10 else ""))
    if r.sync_deletions_refused:
        parts.append(f"[yellow]--sync deleted nothing:[/] {r.sync_deletions_refused}")
    if queued:
        parts.append(f"deletion batch(es) queued for the next workflow run: {', '.join(queued)}")
    if (said := describe_metadata_changes(r)) is not None:
        parts.append(said + (f" ({len(metadata_batches)} metadata batch(es) queued for the next workflow run)"
                             if metadata_batches else ""))
    if r.errors:
        shown = ("" if len(r.errors) <= SHOWN_IN_TABLES
                 else f", the first {SHOWN_IN_TABLES}; --output json lists all")
        parts.append(fitted(f"Rejected records ({len(r.errors):,}{shown})",
                            [FILE_LINE, Column("receipt_id"),
                             Column("field"), Column("problem", wrap=True)],
                            [[e.line_number, e.receipt_id, e.field, e.problem]
                             for e in r.errors[:SHOWN_IN_TABLES]]))
        not_json = sum(e.problem.startswith("not valid JSON") for e in r.errors)
        if not r.receipts_imported and not_json * 2 > r.records_read:
            parts.append(f"[yellow]nothing imported: {not_json:,} of {r.records_read:,} lines are not "
                         f"JSON[/]; is {r.source_file} a JSONL file (one receipt object per line)?")
        elif not r.receipts_imported:
            parts.append("[yellow]nothing imported: every record was rejected[/] (fix the file and import "
                         "it again; format: tests/data/README.md)")
    if r.skipped_items:
        parts.append(fitted(f"Skipped items ({len(r.skipped_items)})",
                            [FILE_LINE, Column("receipt_id"), Column("item"),
                             Column("field"), Column("problem", wrap=True)],
                            [[s.line_number, s.receipt_id, s.item, s.field, s.problem]
                             for s in r.skipped_items[:SHOWN_IN_TABLES]]))
    if r.clamped_boxes:
        parts.append(fitted(f"Clamped boxes ({len(r.clamped_boxes)})",
                            [FILE_LINE, Column("receipt_id"), Column("field"),
                             Column("from", wrap=True), Column("to", wrap=True)],
                            [[c.line_number, c.receipt_id, c.field, c.original, c.clamped]
                             for c in r.clamped_boxes[:SHOWN_IN_TABLES]]))
    return parts


def register(app: typer.Typer) -> None:
    """The commands above attach to the `receipts` and `batches` groups of data_commands."""
