"""The operator's CLI says what it did: start-execution --until-idle, a summary on every execution
(terminal and JSON), why nothing was published, last_error and one hint after a failure, paged and
failed-only history with the failed state, and ISO-8601 tables whose ids are never cut."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from built_scenarios import cli_on_a_copy
from cli_runner import Cli, fast_cli
from pipeline import receipts_file

EXIT_EXECUTION_FAILED = 4
SLOW_PROVIDER = {"LOCAL_PROVIDER_POLLS_PER_STAGE": "1"}  # 4 polls per batch, like a real batch's stages


def slow_cli(root) -> Cli:
    return Cli(home=root / "home", settings=dict(SLOW_PROVIDER))


@pytest.mark.slow
def test_twenty_new_receipts_are_published_by_five_commands(tmp_path):
    cli = slow_cli(tmp_path)
    imported = cli.json("receipts", "import", str(receipts_file(tmp_path, 20, start=100)))
    cli.json("submit", "line")
    cli.json("submit", "word")

    lines = cli.json("start-execution", "line", "--until-idle")
    words = cli.run("start-execution", "word", "--until-idle", COLUMNS="200")  # as a person reads it

    assert imported["receipts_imported"] == 20
    assert lines["summary"]["stopped_because"] == "idle" and lines["summary"]["batches_still_active"] == 0
    assert lines["summary"]["embeddings_published"] == imported["lines_added"]
    assert len(lines["executions"]) > 1 and all(e["status"] == "SUCCEEDED" for e in lines["executions"])
    assert lines["executions"][0]["summary"]["published"] is False
    assert all("summary" in e and e["executionArn"] for e in lines["executions"])
    assert f"published {imported['words_added']:,} embeddings" in words.stdout
    assert "no word batch is active" in words.stdout
    counts = {kind: {s: n for s, n in by.items() if n} for kind, by in cli.json("status")["items"].items()}
    assert counts == {"line": {"SUCCESS": imported["lines_added"]},
                      "word": {"SUCCESS": imported["words_added"]}}


def test_a_run_that_published_nothing_says_why_and_what_to_run(tmp_path):
    cli = slow_cli(tmp_path)
    cli.json("receipts", "import", str(receipts_file(tmp_path, 2)))
    submitted = cli.json("submit", "line", "--max-items-per-batch", "40")
    batches = len(submitted["batches"])

    described = cli.json("start-execution", "line", "--name", "early")
    printed = cli.run("start-execution", "line", "--name", "early-again")

    summary = described["summary"]
    assert (summary["published"], summary["batches_listed"], summary["batches_still_active"]) == (
        False, batches, batches)
    assert summary["message"] == (f"published nothing: {batches} batches still in progress at the "
                                  "provider; run again later, or use --until-idle")
    assert summary["next"] == "embedding-ingest start-execution line --until-idle"
    assert "published nothing" in printed.stdout and "still in progress" in printed.stdout
    assert printed.stderr.strip().splitlines()[-1] == (
        "next: embedding-ingest start-execution line --until-idle")


def test_describe_execution_says_the_next_step_of_the_workspace_now_as_status_does(tmp_path):
    cli = slow_cli(tmp_path)
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))
    cli.json("submit", "line")
    early = cli.json("start-execution", "line", "--name", "early")
    assert early["summary"]["next"] == "embedding-ingest start-execution line --until-idle"
    cli.json("start-execution", "line", "--until-idle", "--interval", "0")  # every line batch completes
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1, start=1)))  # new lines wait

    described = cli.run("describe-execution", "early", COLUMNS="80")
    status = cli.run("status", COLUMNS="80")

    assert described.stderr.strip().splitlines()[-1] == "next: embedding-ingest submit line"
    assert status.stderr.strip().splitlines()[-1] == "next: embedding-ingest submit line"
    assert cli.json("describe-execution", "early")["summary"]["next"] == "embedding-ingest submit line"


def test_max_runs_stops_the_loop_and_says_what_is_left(tmp_path):
    cli = slow_cli(tmp_path)
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))
    cli.json("submit", "line")

    result = cli.json("start-execution", "line", "--until-idle", "--max-runs", "1", "--interval", "0")

    assert len(result["executions"]) == 1
    assert result["summary"]["stopped_because"] == "max_runs" and result["summary"]["batches_still_active"]
    refused = cli.json("start-execution", "line", "--max-runs", "2", code=2)
    assert "--until-idle" in refused["message"]


def test_until_idle_says_it_polls_again_instead_of_advising_until_idle(tmp_path):
    cli = slow_cli(tmp_path)
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))
    cli.json("submit", "line")

    printed = cli.run("start-execution", "line", "--until-idle", COLUMNS="200")  # as a person reads it

    said = [line for line in printed.stderr.splitlines() if ": SUCCEEDED, " in line]
    assert len(said) > 1 and not any("--until-idle" in line or "run again" in line for line in said), said
    waiting = "1 batch still in progress at the provider; polling again"
    assert all(line.endswith(waiting) for line in said[:-1])
    assert said[-1].endswith("1 batch marked complete"), said


def test_a_failed_execution_marks_its_batches_and_prints_one_hint(lost_archive):
    cli, built = lost_archive  # the published archive is lost: the next final merge cannot build on it
    second_batches = set(built["second_batches"])

    failed = cli.run("start-execution", "line", "--name", "second", code=EXIT_EXECUTION_FAILED)

    assert failed.stderr.strip().splitlines()[-1] == (
        "next: embedding-ingest get-execution-history second --failed-only")
    assert "FinalMerge" in failed.stdout and "ObjectNotFoundError" in failed.stdout
    listed = {b["batch_id"]: b for b in cli.json("batches", "list")["batches"]}
    for batch_id in second_batches:
        assert listed[batch_id]["last_error"].startswith("execution second failed in FinalMerge: "
                                                        "ObjectNotFoundError")
    failures = cli.json("get-execution-history", "second", "--failed-only")["events"]
    assert {e["stateName"] for e in failures} == {"FinalMerge"}
    assert all(e["type"].endswith("Failed") for e in failures)
    table = cli.run("get-execution-history", "second", "--failed-only", COLUMNS="200").stdout
    assert "FinalMerge" in table and "ObjectNotFoundError" in table and "cause" in table
    described = cli.json("describe-execution", "second")
    assert described["summary"]["failed_state"] == "FinalMerge"
    assert described["summary"]["next"] == "embedding-ingest get-execution-history second --failed-only"


LONG_NAME = "a-deliberately-long-execution-name-that-a-narrow-terminal-must-wrap-not-cut-0001"[:80]


def _one_line_run(root):
    cli = fast_cli(root)
    cli.json("receipts", "import", str(receipts_file(root, 1)))
    cli.json("submit", "line")
    cli.json("start-execution", "line", "--name", LONG_NAME)


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    cli, _ = cli_on_a_copy(tmp_path_factory, "one-line-run", _one_line_run)
    return cli, LONG_NAME


def test_history_pages_with_max_results_and_next_token_like_the_aws_cli(one_run):
    cli, name = one_run
    everything = cli.json("get-execution-history", name)["events"]

    pages, token = [], None
    while True:
        paging = ["--next-token", token] if token else []
        page = cli.json("get-execution-history", name, "--max-results", "7", *paging)
        pages.append(page["events"])
        token = page.get("nextToken")
        if token is None:
            break

    assert [e for page in pages for e in page] == everything
    assert all(len(page) == 7 for page in pages[:-1]) and 1 <= len(pages[-1]) <= 7
    bad = cli.json("get-execution-history", name, "--next-token", "not-a-token", code=2)
    assert bad["error"] == "InvalidTokenError"


@pytest.mark.parametrize("columns", ["80", "200"])
def test_tables_show_iso_times_and_whole_ids_at_any_width(one_run, columns):
    cli, name = one_run

    listed = cli.run("list-executions", COLUMNS=columns).stdout
    utc = cli.run("--utc", "get-execution-history", name, "--max-results", "3", COLUMNS=columns).stdout

    assert "…" not in listed and "…" not in utc
    cells = [line.split("│")[1].strip() for line in listed.splitlines() if line.startswith("│")]
    # An 80-character name cannot sit on one line of an 80-column table: it folds, never cut.
    assert "".join(cells) == name
    local = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\b(?!Z)", listed)
    assert len(local) == 1 and all(datetime.fromisoformat(s) for s in local)  # started
    day = re.search(r"events of .* on (\d{4}-\d\d-\d\d)", " ".join(utc.split())).group(1)
    stamps = re.findall(r"\b\d\d:\d\d:\d\dZ", utc)  # the time of day per event, the date in the title
    assert len(stamps) == 3 and all(datetime.fromisoformat(f"{day}T{s}") for s in stamps)
    assert "time" in utc


def test_enum_options_are_case_insensitive_and_ids_may_be_comma_separated_or_repeated(tmp_path):
    cli = fast_cli(tmp_path)
    cli.json("receipts", "import", str(receipts_file(tmp_path, 2)))
    ids = [b["batch_id"] for b in cli.json("submit", "line", "--max-items-per-batch", "30")["batches"]]
    assert len(ids) >= 3

    reset = cli.json("batches", "reset", "--status", "failed", "--ids", f"{ids[0]},{ids[1]}",
                     "--ids", ids[0], "--ids", ids[2])
    listed = cli.json("batches", "list", "--status", "Failed", "--type", "LINE", "-o", "JSON")

    assert reset["count"] == 3 and reset["batch_ids"] == ids[:3]
    assert sorted(b["batch_id"] for b in listed["batches"]) == sorted(ids[:3])
    assert cli.json("list-executions", "--status", "succeeded", "--workflow", "Line") == {"executions": []}
