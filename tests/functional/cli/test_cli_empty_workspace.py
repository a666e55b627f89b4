"""A first command in a workspace with nothing in it still says what to run next (a workspace that
does not exist is refused: test_cli_errors_and_names)."""

from __future__ import annotations

from pathlib import Path

from cli_runner import fast_cli
from pipeline import receipts_file


def test_start_execution_with_nothing_imported_points_at_the_import(tmp_path: Path) -> None:
    cli = fast_cli(tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    cli.json("receipts", "import", str(empty))  # a workspace (import starts one) with nothing in it

    done = cli.run("start-execution", "line", COLUMNS="80")

    assert "published nothing" in done.stdout
    assert "next: embedding-ingest receipts import FILE" in done.stderr.splitlines()


def test_query_and_pull_before_anything_is_published_are_refused_as_bad_input(tmp_path: Path) -> None:
    cli = fast_cli(tmp_path)
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))

    query = cli.json("query", "line", "TOTAL", code=2)
    pull = cli.run("snapshots", "pull", "line", str(tmp_path / "pulled"), code=2)

    assert query == {"error": "NothingPublishedError", "transient": False,
                     "try": "embedding-ingest submit line",
                     "message": "no lines published yet (no execution has published a version)"}
    assert pull.stderr == ("error: no lines published yet (no execution has published a version); "
                           "try: embedding-ingest submit line\n")


def test_snapshots_list_before_any_publish_says_so_like_the_other_empty_lists(tmp_path: Path) -> None:
    cli = fast_cli(tmp_path)
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))

    versions = cli.run("snapshots", "list", "line", COLUMNS="80")
    batches = cli.run("batches", "list", COLUMNS="80")

    assert versions.stdout == "nothing published yet for line (0 versions)\n"
    assert versions.stderr == batches.stderr == "next: embedding-ingest submit line\n"
    assert versions.returncode == batches.returncode == 0
    assert cli.json("snapshots", "list", "line") == {"database": "lines", "versions": []}
