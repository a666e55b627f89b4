"""Importing a file that is not JSONL (a README, a CSV) is an error: one line saying what is wrong and
where, in the `{"error","message","try"}` document under --output json, exit 2, and no workspace
started for it. A file whose every record is rejected exits 2 (bad input, nothing done), not 3 (some
rejected, the rest done): the README's exit-code list. An empty file says so."""

from __future__ import annotations

import json
from pathlib import Path

from cli_runner import Cli, fast_cli

EXIT_USAGE = 2  # bad input: nothing was imported


def test_a_file_that_is_not_jsonl_is_an_error_and_starts_no_workspace(tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("\n" + "".join(f"line {n} of some notes\n" for n in range(1, 121)), encoding="utf-8")
    cli: Cli = fast_cli(tmp_path)

    shown = cli.run("receipts", "import", str(notes), code=EXIT_USAGE, COLUMNS="80")
    assert shown.stdout == ""  # no "Imported ..." headline, no table of rejects
    error = shown.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert error.startswith(f"error: {notes} is not a JSONL file (none of its 120 lines is a JSON object; "
                            "line 2: not valid JSON"), error
    assert "; try: embedding-ingest receipts import FILE.jsonl" in error
    assert not cli.home.exists()  # no ledger, no workspace: `status` still says there is none

    as_json = cli.run("receipts", "import", str(notes), "--output", "json", code=EXIT_USAGE)
    document = json.loads(as_json.stdout)
    assert set(document) == {"error", "message", "try", "transient"}
    assert document["message"].startswith(f"{notes} is not a JSONL file")
    assert document["try"].startswith("embedding-ingest receipts import FILE.jsonl")
    assert not cli.home.exists()


def test_a_file_whose_every_record_is_rejected_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"receipt_id": "r-1", "width": 0, "height": 10, "lines": [], "words": []}\n'
                   '{"receipt_id": "r-2", "width": 10, "height": -1, "lines": [], "words": []}\n',
                   encoding="utf-8")
    cli: Cli = fast_cli(tmp_path)

    shown = cli.run("receipts", "import", str(bad), code=EXIT_USAGE, COLUMNS="80").stdout

    assert "Rejected records (2)" in shown
    assert "nothing imported: every record was rejected" in " ".join(shown.split())


def test_an_empty_file_says_it_held_no_record(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    cli: Cli = fast_cli(tmp_path)

    shown = cli.run("receipts", "import", str(empty), COLUMNS="80").stdout

    assert "records read  0\n" in shown
    # the path may fold at 80 columns (tmp paths are long): compare with the line breaks taken out
    assert f"norecordin{empty}(empty,oronlyblanklines):nothingimported" in "".join(shown.split())
