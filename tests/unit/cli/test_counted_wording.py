"""Counts in what people read say "1 batch", "2 batches": the titles of `start-execution --until-idle`
and of `submit`."""

from __future__ import annotations

from embedding_ingest.cli.execution_views import idle_tables
from embedding_ingest.cli.output import counted


def test_counted_puts_the_noun_in_the_right_number():
    assert [counted(1, "batch"), counted(2, "batch"), counted(0, "line"), counted(1, "execution")] == [
        "1 batch", "2 batches", "0 lines", "1 execution"]


def test_one_idle_execution_is_titled_in_the_singular():
    summary = {"executions": 1, "succeeded": 1, "failed": 0, "deltas_written": 0, "embeddings_published": 0,
               "published_version": None, "batches_marked_complete": 0, "items_released": 0,
               "batches_still_active": 0, "stopped_because": "idle", "message": "idle"}
    runs = idle_tables({"executions": [{"name": "line-1", "status": "SUCCEEDED", "summary": {}}],
                        "summary": summary})[0]
    assert runs.renderables[0].plain == "1 execution"  # the title line above the table
