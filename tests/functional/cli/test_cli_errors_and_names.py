"""Errors a user makes are one line, never a traceback; names StartExecution accepts work end to end;
every command speaks JSON."""

from __future__ import annotations

import json

import pytest
import typer
from cli_runner import Cli, fast_cli
from pipeline import receipts_file

from embedding_ingest.cli.app import app


@pytest.mark.parametrize(("variable", "value", "rule"), [
    ("MAX_BATCHES_PER_EXECUTION", "999", "less than or equal to 250"),
    ("EMBEDDING_DIMENSIONS", "abc", "a valid integer"),
    ("MAX_ITEMS_PER_BATCH", "0", "greater than 0"),
])
def test_a_bad_setting_is_one_line_naming_variable_value_and_rule_and_exits_2(tmp_path, variable, value,
                                                                             rule):
    cli = fast_cli(tmp_path)

    done = cli.run("status", code=2, **{variable: value})
    as_json = cli.json("submit", "line", code=2, **{variable: value})

    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert f"{variable}='{value}'" in done.stderr and rule in done.stderr and "Traceback" not in done.stderr
    assert as_json["error"] == "ConfigurationError" and variable in as_json["message"]


def test_no_aws_region_with_backend_aws_is_a_configuration_error(tmp_path):
    cli = fast_cli(tmp_path)

    done = cli.run("list-executions", "--backend", "aws", code=2, AWS_REGION="", AWS_DEFAULT_REGION="",
                   AWS_CONFIG_FILE=str(tmp_path / "none"))

    assert "AWS_REGION" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback_an_expected_error_otherwise_hides(tmp_path):
    cli = fast_cli(tmp_path)

    quiet = cli.run("status", code=2, MAX_BATCHES_PER_EXECUTION="999")
    flag = cli.run("--debug", "status", code=2, MAX_BATCHES_PER_EXECUTION="999")
    variable = cli.run("status", code=2, MAX_BATCHES_PER_EXECUTION="999", EMBEDDING_INGEST_DEBUG="1")

    assert "Traceback" not in quiet.stderr
    assert "Traceback" in flag.stderr and "Traceback" in variable.stderr
    assert "MAX_BATCHES_PER_EXECUTION='999'" in flag.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("command", [["status"], ["query", "line", "TOTAL"], ["list-executions"],
                                     ["batches", "list"], ["describe-execution", "x"],
                                     ["get-execution-history", "x"], ["snapshots", "list", "line"], ["ls"],
                                     ["batches", "show", "x"], ["logs", "describe-log-groups"],
                                     ["logs", "filter-log-events", "--log-group-name", "/aws/lambda/x"],
                                     # commands that write: only `receipts import` starts a workspace
                                     ["start-execution", "line"], ["start-execution", "word", "--until-idle"],
                                     ["submit", "line"], ["receipts", "delete", "x"]])
def test_commands_other_than_import_refuse_a_missing_workspace_and_do_not_create_it(tmp_path, command):
    home = tmp_path / "not-yet"
    cli = Cli(home=home, settings={})

    done = cli.run(*command, code=2)

    assert done.stderr.strip() == (
        f"error: no workspace at {home} (nothing imported there yet; --home or EMBEDDING_INGEST_HOME "
        "names another); try: embedding-ingest receipts import FILE")
    assert not home.exists()


def test_any_name_start_execution_accepts_runs_to_a_published_snapshot(tmp_path):
    cli = fast_cli(tmp_path)
    for index, name in enumerate(["reçu-é", "日本", "_lead", "run(1)"]):
        imported = cli.json("receipts", "import", str(receipts_file(tmp_path, 1, start=index)))
        cli.json("submit", "line", "--max-items-per-batch", "10")  # several batches, several chunks

        described = cli.json("start-execution", "line", "--name", name)

        assert (described["name"], described["status"]) == (name, "SUCCEEDED")
        assert described["summary"]["embeddings_published"] == imported["lines_added"]
    assert cli.json("describe-execution", "日本")["name"] == "日本"
    again = cli.json("start-execution", "line", "--name", "run(1)", code=1)
    assert again["error"] == "ExecutionAlreadyExistsError"
    # what to try: look at the execution of that name (quoted for the shell), or pick another name
    assert again["try"] == ("embedding-ingest describe-execution 'run(1)'   (the execution of that name), "
                            "or the same command with another --name")
    said = cli.run("start-execution", "line", "--name", "日本", code=1).stderr
    assert said.strip().endswith("; try: embedding-ingest describe-execution '日本'   (the execution of that "
                                 "name), or the same command with another --name"), said


@pytest.mark.parametrize("name", ["", "a b", "run:1", "a/b", "x" * 81])
def test_names_start_execution_refuses_are_refused_before_anything_runs(cli, name):
    refused = cli.json("start-execution", "line", "--name", name, code=2)  # bad input

    assert refused["error"] == "InvalidInputError" and "1-80 characters" in refused["message"]
    assert not (cli.home / "ledger.sqlite3").exists() or cli.json("list-executions") == {"executions": []}


def _leaf_commands(command, path: tuple[str, ...] = ()):
    if hasattr(command, "commands"):  # a group (typer ships its own click)
        for name, sub in command.commands.items():
            yield from _leaf_commands(sub, (*path, name))
    else:
        yield path, command


# Long-running commands (a loop, a server) log as they go; they have no one result to print as JSON.
LONG_RUNNING = {"schedule", "console", "snapshots serve"}


def test_every_command_accepts_output_json():
    commands = {" ".join(path): command for path, command in _leaf_commands(typer.main.get_command(app))}
    missing = [name for name, command in commands.items()
               if not any("--output" in p.opts for p in command.params) and name not in LONG_RUNNING]

    assert missing == []


def test_definitions_render_speaks_json_and_table(cli):
    as_json = cli.json("definitions", "render", "word")
    as_table = cli.run("definitions", "render", "WORD", "-o", "table", COLUMNS="200").stdout

    assert as_json["StartAt"] == "ListPendingWordBatches" and "WordFinalMerge" in as_json["States"]
    assert "ListPendingWordBatches" in as_table and "WordFinalMerge" in as_table
    assert json.loads(cli.run("definitions", "render", "word").stdout) == as_json  # json by default
