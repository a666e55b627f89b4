"""A first command in a workspace with nothing in it still says what to run next."""

from __future__ import annotations

from pathlib import Path

from cli_runner import fast_cli


def test_start_execution_with_nothing_imported_points_at_the_import(tmp_path: Path) -> None:
    cli = fast_cli(tmp_path)
    done = cli.run("start-execution", "line", COLUMNS="80")
    assert "published nothing" in done.stdout
    assert "next: embedding-ingest receipts import FILE" in (done.stdout + done.stderr).splitlines()
