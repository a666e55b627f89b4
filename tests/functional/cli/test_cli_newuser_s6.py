"""What a new user saw in trial session 6, as they see it at 80 columns:
every `next:` is a command that runs, a re-import says nothing new happened, a version is shown in
the one short form."""

from __future__ import annotations

import re
import shlex

from cli_runner import fast_cli
from pipeline import receipts_file

NARROW = {"COLUMNS": "80"}


def _next_command(stderr: str) -> list[str]:
    """The `next:` line's command as argv (after the program name); it must be one line."""
    hints = [line for line in stderr.splitlines() if line.startswith("next: ")]
    assert len(hints) == 1, stderr
    words = shlex.split(hints[0].removeprefix("next: "))
    assert words[0] == "embedding-ingest", hints
    return words[1:]


def _published(tmp_path):
    cli = fast_cli(tmp_path)
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))
    cli.json("submit", "line")
    cli.json("start-execution", "line")
    return cli


def test_a_log_search_with_no_match_hints_a_command_that_runs(tmp_path):
    cli = _published(tmp_path)
    group = cli.json("logs", "describe-log-groups")["logGroups"][0]["logGroupName"]

    nothing = cli.run("logs", "filter-log-events", "--log-group-name", group, "--filter-pattern",
                      "zzz-no-such-text", **NARROW)
    assert nothing.stdout == "" and "no events in" in nothing.stderr
    follow = _next_command(nothing.stderr)
    assert follow == ["logs", "filter-log-events", "--log-group-name", group]
    assert cli.run(*follow, **NARROW).stdout.strip()  # the group's events, unfiltered


def test_reimporting_the_same_receipts_says_nothing_new_was_imported(tmp_path):
    cli = fast_cli(tmp_path)
    receipts = str(receipts_file(tmp_path, 2))
    first = cli.run("receipts", "import", receipts, **NARROW)
    assert "receipts imported" in first.stdout

    again = cli.run("receipts", "import", receipts, **NARROW).stdout
    assert "receipts imported" not in again and "tokens" not in again
    assert again.startswith("Nothing new in")
    assert "0 new: 2 receipts already imported, unchanged" in again


def test_the_model_guard_shows_the_version_as_snapshots_list_does(tmp_path):
    cli = _published(tmp_path)
    version = cli.json("snapshots", "list", "line")["versions"][0]["version"]
    listed = cli.run("snapshots", "list", "line", **NARROW).stdout
    assert version[:8] in listed and version[:9] not in listed  # the one short form: 8 characters here

    refused = cli.run("submit", "line", code=2, EMBEDDING_DIMENSIONS="32", **NARROW).stderr
    assert f"published lines version {version[:8]} is " in refused


def test_a_query_at_80_columns_says_the_merchant_name_column_was_left_out(tmp_path):
    cli = _published(tmp_path)
    results = cli.json("query", "line", "TOTAL", "-n", "3")["results"]
    assert any(r["metadata"].get("merchant_name") for r in results)  # there is something to show

    narrow = cli.run("query", "line", "TOTAL", "-n", "3", **NARROW).stdout
    # 88 columns at least with it: it goes, and the table says so
    assert "┃ merchant_name" not in narrow and all(len(line) <= 80 for line in narrow.splitlines())
    assert "(merchant_name left out to fit 80 columns; --wide or --output json shows it)" in narrow
    wide = cli.run("query", "line", "TOTAL", "-n", "3", "--wide", **NARROW).stdout
    assert "┃ merchant_name" in wide and "left out" not in wide


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_a_long_error_breaks_between_words_at_a_terminal_and_stays_one_line_in_a_pipe(tmp_path):
    cli = fast_cli(tmp_path)
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))
    asked = ("query", "line", "TOTAL", "--version", "f" * 24)

    piped = cli.run(*asked, code=2, **NARROW).stderr
    assert piped.count("\n") == 1 and len(piped) > 100 and piped.startswith("error: "), piped
    # a terminal (TTY_COMPATIBLE: rich treats stderr as one) 80 columns wide
    shown = ANSI.sub("", cli.run(*asked, code=2, TTY_COMPATIBLE="1", NO_COLOR="1", **NARROW).stderr)
    lines = shown.splitlines()
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines), shown
    assert all(line.startswith("  ") for line in lines[1:])
    assert " ".join(line.strip() for line in lines) == piped.strip()  # the same words, none cut
