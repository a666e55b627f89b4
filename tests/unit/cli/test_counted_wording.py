"""Counts in what people read say "1 batch", "2 batches" (the titles of `start-execution --until-idle`
and of `submit`), and read 1,381 wherever they are shown."""

from __future__ import annotations

from rich.console import Console

from embedding_ingest.cli.execution_views import idle_tables
from embedding_ingest.cli.output import counted
from embedding_ingest.cli.tables import Column, fitted
from embedding_ingest.pipeline.report import aggregate


def test_counted_puts_the_noun_in_the_right_number():
    assert [counted(1, "batch"), counted(2, "batch"), counted(0, "line"), counted(1, "execution")] == [
        "1 batch", "2 batches", "0 lines", "1 execution"]


def test_one_idle_execution_is_titled_in_the_singular():
    summary = {"workflow": "line", "executions": 1, "succeeded": 1, "failed": 0, "deltas_written": 0,
               "embeddings_published": 0, "published_version": None, "batches_marked_complete": 0,
               "items_released": 0, "batches_still_active": 0, "stopped_because": "idle", "message": "idle"}
    runs = idle_tables({"executions": [{"name": "line-1", "status": "SUCCEEDED", "summary": {}}],
                        "summary": summary})[0]
    assert runs.renderables[0].plain == "1 execution"  # the title line above the table


def test_a_count_reads_1_381_in_tables_records_and_sentences_while_line_numbers_stay_plain():
    run = {"status": "SUCCEEDED", "published_version": "v1", "embeddings_published": 1381}
    summary = aggregate([run], workflow="word", stopped_because="idle", batches_still_active=0)
    runs, totals = idle_tables({"executions": [{"name": "word-1", "status": "SUCCEEDED", "summary": run}],
                                "summary": {**summary, "succeeded": 1, "failed": 0}})
    rejected = fitted("Rejected records", [Column("line", justify="right", plain=True), Column("field")],
                      [[1022, "width"]])

    shown = "\n".join(_render(runs) + _render(totals) + _render(rejected))

    assert summary["message"] == ("1 execution: published 1,381 embeddings (words version v1); "
                                  "no word batch is active")
    assert shown.count("1,381") == 3 and "1381" not in shown  # the table, the record, its summary line
    assert "1022" in shown and "1,022" not in shown


def _render(renderable) -> list[str]:
    console = Console(width=120, record=True, color_system=None, force_terminal=False)
    with console.capture() as captured:
        console.print(renderable)
    return captured.get().splitlines()
