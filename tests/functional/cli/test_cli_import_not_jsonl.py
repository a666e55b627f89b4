"""Importing a file that is not JSONL (a README, a CSV) must not flood the terminal: the rejected
records' table stops at the first 50 (JSON keeps every one) and one line says what is likely wrong;
an empty file says so. A file whose every record is rejected exits 2 (bad input, nothing done), not
3 (some rejected, the rest done): the README's exit-code list."""

from __future__ import annotations

from pathlib import Path

from cli_runner import Cli, fast_cli

EXIT_USAGE = 2  # bad input: nothing was imported


def test_a_file_that_is_not_jsonl_is_summed_up_not_listed_line_by_line(tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("".join(f"line {n} of some notes\n" for n in range(1, 121)), encoding="utf-8")
    cli: Cli = fast_cli(tmp_path)

    shown = cli.run("receipts", "import", str(notes), code=EXIT_USAGE, COLUMNS="80").stdout
    rows = [line for line in shown.splitlines() if "not valid JSON" in line]
    assert len(rows) == 50, shown
    assert "Rejected records (120, the first 50; --output json lists all)" in shown
    assert "nothing imported: 120 of 120 lines are not JSON" in " ".join(shown.split())
    # the table may fold the path (tmp paths pass 80 columns): compare with the line breaks taken out
    assert f"is{notes}aJSONLfile" in "".join(shown.split())

    report = cli.json("receipts", "import", str(notes), code=EXIT_USAGE)
    assert len(report["errors"]) == 120 and report["receipts_imported"] == 0


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
