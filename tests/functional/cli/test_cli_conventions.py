"""The command line's conventions, as a user meets them: one error style (`error: WHAT (WHY); try:
COMMAND`, one line, no traceback), one exit code per outcome (2 bad usage or input, 1 a failed
operation, 3 rejected records, 4 a failed execution), and `--help` that lists commands in the order of
the job, describes every option and shows flags as flags.

In-process through typer's CliRunner (the app's own edge handles every error, as in the real script);
the pseudo-terminal tests of Ctrl-C are in test_cli_interrupt.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from built_scenarios import cli_on_a_copy
from cli_runner import fast_cli
from pipeline import receipts_file
from typer.testing import CliRunner

from embedding_ingest.cli.app import app
from embedding_ingest.cli.entry import Panel

ONE_LINE_ERROR = re.compile(r"^error: [^\n]+; try: [^\n]+\n$")


@pytest.fixture
def run(tmp_path, monkeypatch):
    """Run the CLI in-process on a workspace under tmp_path; returns the click Result."""
    monkeypatch.setenv("EMBEDDING_INGEST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str):
        return CliRunner().invoke(app, list(args))

    return invoke


@pytest.mark.parametrize(("args", "says"), [
    (["subimt", "line"], "no such command 'subimt' (did you mean 'submit'?); try: embedding-ingest --help"),
    (["submit", "line", "--dryrun"], "no such option: --dryrun"),
    (["batches", "list", "--status", "bogus"], "invalid value for '--status': 'bogus' is not one of"),
    (["submit"], "missing argument 'KIND'"),
    (["query", "line", "x", "-n", "0"], "try: embedding-ingest query --help"),
    (["receipts", "import", "/nonexistent.jsonl"], "file '/nonexistent.jsonl' does not exist"),
])
def test_bad_usage_is_one_line_and_exits_2(run, args, says):
    done = run(*args)

    assert done.exit_code == 2, done.output
    assert ONE_LINE_ERROR.match(done.stderr), done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr and "Value error" not in done.stderr


def test_bad_input_exits_2_with_the_command_to_try(run, tmp_path):
    missing = run("status")
    empty_query = run("query", "line", "   ")

    assert missing.exit_code == 2 and ONE_LINE_ERROR.match(missing.stderr)
    assert missing.stderr.startswith(f"error: no workspace at {tmp_path / 'home'} (")
    assert missing.stderr.endswith("; try: embedding-ingest receipts import FILE\n")
    assert not (tmp_path / "home").exists()  # a read-only command never creates one
    assert empty_query.exit_code == 2 and "query text is empty" in empty_query.stderr


def test_a_usage_error_under_output_json_is_json(run):
    done = run("batches", "list", "--status", "bogus", "--output", "json")

    assert done.exit_code == 2
    assert json.loads(done.stdout) == {
        "error": "UsageError", "transient": False, "try": "embedding-ingest batches list --help",
        "message": "invalid value for '--status': 'bogus' is not one of 'pending', 'validating', "
                   "'in_progress', 'finalizing', 'completed', 'failed', 'expired', 'canceling', 'cancelled'"}


def test_a_commands_output_option_written_before_the_command_is_the_commands(run):
    typo = run("--output", "json", "subimt")
    before = run("-o", "json", "definitions", "render", "line")
    after = run("definitions", "render", "line", "--output", "json")
    alone = run("--output", "json")

    assert typo.exit_code == 2 and json.loads(typo.stdout)["message"] == \
        "no such command 'subimt' (did you mean 'submit'?)"
    assert before.exit_code == 0 and json.loads(before.stdout) == json.loads(after.stdout)
    assert alone.exit_code == 2 and "each command takes it: embedding-ingest COMMAND --output" in alone.stdout


def _one_published_line_snapshot(root: Path) -> None:
    cli = fast_cli(root)
    cli.json("receipts", "import", str(receipts_file(root, 1)))
    cli.json("submit", "line")
    cli.json("start-execution", "line")


def test_an_output_option_before_the_command_holds_when_the_command_line_ends_with_dash_dash(
        tmp_path_factory):
    """`--` ends a command's options (a query text that starts with '-'); --output written before the
    command is still the command's option, and the text after the `--` is still the query's."""
    cli, _ = cli_on_a_copy(tmp_path_factory, "conventions-one-line-snapshot", _one_published_line_snapshot)

    before = cli.json_stdout("--output", "json", "query", "line", "--", "-TOTAL")
    after = cli.json_stdout("query", "line", "--output", "json", "--", "-TOTAL")

    assert before == after and before["query"] == "-TOTAL" and before["results"]


def _definition(tmp_path, states: dict) -> str:
    path = tmp_path / "machine.json"
    path.write_text(json.dumps({"StartAt": next(iter(states)), "States": states}))
    return str(path)


def test_a_failed_operation_exits_1(run, tmp_path):
    machine = _definition(tmp_path, {"Done": {"Type": "Pass", "End": True}})
    assert run("definitions", "run", machine, "--name", "once").exit_code == 0

    again = run("definitions", "run", machine, "--name", "once")  # the name is taken

    assert again.exit_code == 1
    assert ONE_LINE_ERROR.match(again.stderr) and "already exists" in again.stderr
    assert "; try: embedding-ingest describe-execution once   (the execution of that name)" in again.stderr


def test_rejected_records_exit_3_and_the_rest_is_imported(run, tmp_path):
    good = {"receipt_id": "r-1", "width": 100, "height": 100,
            "lines": [{"line_id": 1, "text": "TOTAL 5.00", "bbox": [0, 0, 10, 10]}], "words": []}
    source = tmp_path / "receipts.jsonl"
    source.write_text(json.dumps(good) + "\n" + json.dumps({"receipt_id": "r-2", "lines": "oops"}) + "\n")

    done = run("receipts", "import", str(source))

    assert done.exit_code == 3, done.output
    assert "Rejected records" in done.stdout and "r-2" in done.stdout
    assert "lines added" in done.stdout and "next: embedding-ingest submit line" in done.stderr


def test_a_failed_execution_exits_4(run, tmp_path):
    machine = _definition(tmp_path, {"Broken": {"Type": "Fail", "Error": "Oops", "Cause": "on purpose"}})

    done = run("definitions", "run", machine)

    assert done.exit_code == 4 and "FAILED" in done.stderr and "Traceback" not in done.stderr


def _root():
    return typer.main.get_command(app)


def _leaves(command, path=()):
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path, command


def test_every_option_and_argument_is_described():
    undescribed = [(" ".join(path), p.name) for path, command in _leaves(_root()) for p in command.params
                   if not getattr(p, "help", None)]

    assert undescribed == []


def test_version_prints_the_installed_version_and_exits_0(run):
    from importlib.metadata import version

    done = run("--version")

    shown = f"embedding-ingest {version('embedding-ingest')}\n"
    assert (done.exit_code, done.stdout, done.stderr) == (0, shown, "")
    assert "--version " in run("--help").stdout


def test_help_lists_commands_in_the_order_of_the_job_with_flags_as_flags(run):
    top = run("--help").stdout
    submit = run("submit", "--help").stdout

    sections = [line.rstrip(":") for line in top.splitlines() if line.endswith(":") and not line[0].isspace()]
    assert sections == ["Options", *(panel.value for panel in Panel)]
    listed = [line.split()[0] for line in top.splitlines() if re.match(r"^  [a-z]", line)]
    assert [name for name in listed if name in ("receipts", "submit", "start-execution", "query", "status")] \
        == ["receipts", "submit", "start-execution", "query", "status"]
    assert "..." not in top.split("Get data in:")[1].split("Errors are one line")[0]  # no cut short help
    assert "<bool>" not in top + submit and "--dry-run " in submit
    assert "Usage: embedding-ingest submit [OPTIONS] KIND\n" in submit
    assert "3 some records rejected" in top and "4 an execution failed" in top
    assert all(len(line) <= 80 for line in top.splitlines() + submit.splitlines())


def test_help_text_wraps_at_spaces_never_inside_an_option_or_a_model_name(run):
    """At 80 columns, `--max-results` and `all-MiniLM-L6-v2-int8` stay whole (textwrap would break after
    a hyphen: `--max-` / `results`), so a reader can copy them."""
    for command, whole in ((["get-execution-history"], "--max-results"), (["demo"], "all-MiniLM-L6-v2-int8")):
        shown = run(*command, "--help").stdout
        assert whole in shown, shown
        assert not any(line.rstrip().endswith("-") and not line.rstrip().endswith(" -")
                       for line in shown.splitlines()), shown


@pytest.mark.parametrize(("command", "usage", "shown"), [
    (["receipts", "import"], "receipts import [OPTIONS] FILE", ["  FILE  JSONL file"]),
    (["query"], "query [OPTIONS] KIND TEXT", ["  KIND <line|word>  line or word", "  TEXT              Text",
                                              "  --where JSON ", "  --version VERSION "]),
    (["start-execution"], "start-execution [OPTIONS] [KIND]", ["  KIND <line|word>", "  --name NAME "]),
    (["console"], "console [OPTIONS]", ["  --port PORT "]),
])
def test_help_names_arguments_and_values_as_a_reader_writes_them(run, command, usage, shown):
    done = run(*command, "--help")

    assert done.stdout.startswith(f"Usage: embedding-ingest {usage}\n")
    assert all(text in done.stdout for text in shown), done.stdout
    assert not re.search(r"<(str|int|float|int range|file|path)>|\{[A-Za-z]+\}", done.stdout), done.stdout


@pytest.mark.parametrize("group", ["receipts", "items", "batches", "snapshots", "locks", "objects", "aws"])
def test_a_groups_help_gives_each_command_a_whole_sentence(run, group):
    listed = run(group, "--help").stdout.split("Commands:\n")[1]

    assert "..." not in listed and all(len(line) <= 80 for line in listed.splitlines())
    assert listed.rstrip().endswith(".")


def test_every_top_level_command_sits_in_a_panel():
    unplaced = [name for name, command in _root().commands.items()
                if getattr(command, "rich_help_panel", None) not in {p.value for p in Panel}]

    assert unplaced == []
