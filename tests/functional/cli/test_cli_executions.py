"""start-execution, describe-execution, get-execution-history, list-executions, ls (objects ls
--recursive) and query through the real command line, on one workspace of 10 real receipts whose
lines and words were published by one execution each (plus a workspace whose snapshot archive went
missing, for a failed run)."""

from __future__ import annotations

import json
import shlex

import pytest
from built_scenarios import cli_on_a_copy
from cli_runner import fast_cli
from pipeline import receipts_file

EXIT_EXECUTION_FAILED = 4
DESCRIBE_KEYS = {"executionArn", "stateMachineArn", "name", "status", "startDate", "stopDate", "input",
                 "inputDetails", "output", "outputDetails", "summary"}
# A line of receipt 9 (0-based) whose exact text the local encoder maps nearest to that line itself.
QUERY_TEXT = "CUSTOMER SERVICE HOTLINE : 03-2726-5600"


def _publish_lines_and_words(root):
    cli = fast_cli(root)
    imported = cli.json("receipts", "import", str(receipts_file(root, 10)))
    started = {}
    for kind in ("line", "word"):
        cli.json("submit", kind, "--max-items-per-batch", "400")
        started[kind] = cli.json("start-execution", kind, "--name", f"{kind}-run-1")
    return {"imported": imported, "started": started}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(cli, imported report, {kind: start-execution JSON}) after both workflows published (built once
    per run; this module's copy)."""
    cli, built = cli_on_a_copy(tmp_path_factory, "cli-executions", _publish_lines_and_words)
    return cli, built["imported"], built["started"]


def test_start_execution_prints_the_describe_execution_shape_with_what_was_published(published):
    _, imported, started = published

    for kind, expected in (("line", imported["lines_added"]), ("word", imported["words_added"])):
        described = started[kind]
        assert set(described) == DESCRIBE_KEYS
        assert (described["name"], described["status"]) == (f"{kind}-run-1", "SUCCEEDED")
        assert described["executionArn"].endswith(f":execution:{kind}-ingest:{kind}-run-1")
        assert described["startDate"] <= described["stopDate"]
        output = json.loads(described["output"])
        assert output["final_merge_result"]["total_embeddings"] == expected
        assert output["final_merge_result"]["snapshot_key"] == f"{kind}s/snapshot/latest/"
        assert output["mark_complete_result"]["items_marked"] == expected


def test_describe_execution_by_name_or_arn_and_a_clear_error_for_an_unknown_one(published):
    cli, _, started = published

    # What the run returned, but its next step is the workspace's now (as `status` says it).
    now = 'embedding-ingest query line "TEXT"'
    by_arn = cli.json("describe-execution", started["word"]["executionArn"])
    for described, run in ((cli.json("describe-execution", "line-run-1"), started["line"]),
                           (by_arn, started["word"])):
        assert described["summary"].pop("next") == now
        assert described == run | {"summary": {k: v for k, v in run["summary"].items() if k != "next"}}
    missing = cli.json("describe-execution", "no-such-run", code=2)
    assert missing["error"] == "ExecutionDoesNotExist" and "no-such-run" in missing["message"]


def test_get_execution_history_shape_paging_order_and_failed_only(published):
    cli, _, _ = published

    events = cli.json("get-execution-history", "line-run-1")["events"]

    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["previousEventId"] < e["id"] for e in events)
    assert (events[0]["type"], events[-1]["type"]) == ("ExecutionStarted", "ExecutionSucceeded")
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    assert entered[0] == "ListPendingBatches" and entered[-3:] == [
        "FinalMerge", "MarkBatchesComplete", "IngestionSucceeded"]
    assert cli.json("get-execution-history", "line-run-1", "--max-results", "5")["events"] == events[:5]
    newest_first = cli.json("get-execution-history", "line-run-1", "--reverse-order", "--max-results", "3")
    assert newest_first["events"] == events[::-1][:3]
    assert cli.json("get-execution-history", "line-run-1", "--failed-only") == {"events": []}


def test_list_executions_filters_by_workflow_and_status(published):
    cli, _, started = published

    everything = cli.json("list-executions")["executions"]
    lines = cli.json("list-executions", "--workflow", "line")["executions"]
    words = cli.json("list-executions", "--workflow", "word", "--status", "SUCCEEDED")["executions"]

    assert sorted(e["name"] for e in everything) == ["line-run-1", "word-run-1"]
    assert all("input" not in e and "output" not in e for e in everything)
    assert [(e["name"], e["status"]) for e in lines] == [("line-run-1", "SUCCEEDED")]
    assert [e["executionArn"] for e in words] == [started["word"]["executionArn"]]
    assert cli.json("list-executions", "--status", "FAILED") == {"executions": []}


def test_ls_lists_the_published_snapshot_objects(published):
    cli, _, started = published
    version = json.loads(started["line"]["output"])["final_merge_result"]["snapshot_version"]

    listing = cli.json("ls", "lines/snapshot/")

    keys = [o["key"] for o in listing["objects"]]
    assert listing["prefix"] == "lines/snapshot/" and all(k.startswith("lines/snapshot/") for k in keys)
    assert "lines/snapshot/latest/pointer.json" in keys
    assert f"lines/snapshot/versions/{version}/manifest.json" in keys
    assert all(o["size"] > 0 and o["etag"] for o in listing["objects"])


def test_ls_prints_each_key_whole_on_its_own_line_at_80_columns(published):
    cli, _, _ = published
    keys = [o["key"] for o in cli.json("objects", "ls", "--recursive", "lines/")["objects"]]

    shown = cli.run("ls", "lines/", COLUMNS="80").stdout.splitlines()
    listed = cli.run("--help", COLUMNS="80").stdout

    assert max(map(len, keys)) > 80 and [line.split()[-1] for line in shown] == keys  # no key split
    assert not any(line.split()[0] == "ls" for line in listed.splitlines() if line.strip())  # objects ls


def test_the_next_page_hint_of_history_fits_80_columns_and_pastes_as_one_command(published):
    cli, _, _ = published
    events = cli.json("get-execution-history", "line-run-1")["events"]

    hinted = cli.run("get-execution-history", "line-run-1", "--max-results", "5", COLUMNS="80").stderr
    command = shlex.split(hinted.removeprefix("next: ").replace("\\\n", " "))
    page = cli.json(*command[1:])

    assert hinted.startswith("next: embedding-ingest get-execution-history line-run-1 ")
    assert all(len(line) <= 80 for line in hinted.splitlines())
    assert page["events"] == events[5:10]


def test_a_version_not_kept_points_at_the_list_of_kept_versions(published):
    cli, _, _ = published

    done = cli.run("query", "line", "TOTAL", "--version", "deadbeef", code=2)

    assert done.stderr == ("error: snapshot version 'deadbeef' of 'lines' is not among the kept versions; "
                           "try: embedding-ingest snapshots list line\n")


def test_snapshots_list_shows_the_published_version_as_current(published):
    cli, imported, started = published
    version = json.loads(started["word"]["output"])["final_merge_result"]["snapshot_version"]

    listed = cli.json("snapshots", "list", "word")

    assert listed["database"] == "words"
    assert [(v["version"], v["current"], v["count"]) for v in listed["versions"]] == [
        (version, True, imported["words_added"])]


def test_query_finds_a_line_by_its_exact_text_first(published):
    cli, _, _ = published

    found = cli.json("query", "line", QUERY_TEXT, "-n", "3")

    assert (found["kind"], found["query"], found["model"]) == ("line", QUERY_TEXT, "local-hash-ngram-v1")
    assert len(found["results"]) == 3
    first = found["results"][0]
    assert (first["document"], first["metadata"]["image_id"]) == (QUERY_TEXT, "sroie-009")
    distances = [r["distance"] for r in found["results"]]
    assert distances == sorted(distances)


def test_query_embeds_with_the_snapshots_model_whatever_the_workspace_is_configured_for(published):
    cli, _, _ = published
    expected = cli.json("query", "line", QUERY_TEXT, "-n", "3")

    # The workspace now names another model; the query text must still be embedded with the model
    # whose vectors the snapshot holds (a mismatch cannot happen), not with the configured one.
    found = cli.json("query", "line", QUERY_TEXT, "-n", "3", EMBEDDING_MODEL="text-embedding-3-small")

    assert found["model"] == "local-hash-ngram-v1"
    assert [r["id"] for r in found["results"]] == [r["id"] for r in expected["results"]]
    assert found["results"][0]["document"] == QUERY_TEXT


def test_a_failed_execution_exits_4_and_shows_in_failed_only_history_and_status_filters(lost_archive):
    cli, built = lost_archive
    # The published archive is lost (and not cached): the next final merge cannot build on it.
    assert json.loads(built["first"]["output"])["final_merge_result"]["snapshot_version"]
    assert len(built["archives"]) == 1  # the version's one segment
    assert not (cli.home / "chroma-cache").exists()

    failed = cli.json("start-execution", "line", "--name", "second", code=EXIT_EXECUTION_FAILED)

    assert (failed["status"], failed["error"]) == ("FAILED", "ObjectNotFoundError")
    assert built["archives"][0] in failed["cause"]
    failures = cli.json("get-execution-history", "second", "--failed-only")["events"]
    assert failures[-1]["type"] == "ExecutionFailed"
    assert {e["type"] for e in failures[:-1]} <= {"LambdaFunctionFailed", "TaskFailed"} and failures[:-1]
    assert all(next(v for k, v in e.items() if k.endswith("EventDetails"))["error"] == "ObjectNotFoundError"
               for e in failures)
    for status, names in (("FAILED", ["second"]), ("SUCCEEDED", ["first"])):
        listed = cli.json("list-executions", "--status", status)["executions"]
        assert [e["name"] for e in listed] == names
