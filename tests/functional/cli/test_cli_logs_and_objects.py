"""`logs filter-log-events` and `objects ls|cp`, the local twins of `aws logs filter-log-events` and
`aws s3 ls|cp`: every local invocation's log lines land in the workspace's log store under the
function's deployed group name, and the object store lists and copies as `aws s3` prints. One
workspace, one line execution."""

from __future__ import annotations

import json

import pytest
from built_scenarios import cli_on_a_copy
from cli_runner import fast_cli
from pipeline import receipts_file

COMPACT = "/aws/lambda/embedding-vector-compact-dev"


def _one_line_run(root):
    cli = fast_cli(root)
    cli.json("receipts", "import", str(receipts_file(root, 2)))
    cli.json("submit", "line", "--max-items-per-batch", "400")
    return cli.json("start-execution", "line", "--name", "run-1")["status"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    cli, status = cli_on_a_copy(tmp_path_factory, "cli-logs-objects", _one_line_run)
    assert status == "SUCCEEDED"
    return cli, cli.home.parent


def test_function_logs_are_kept_per_function_and_filtered_as_cloudwatch_filters(ran):
    cli, _ = ran
    found = cli.json("logs", "filter-log-events", "--log-group-name", COMPACT,
                     "--filter-pattern", '{ $.batch_id = "run-1" }', "--max-items", "50")
    lines = [json.loads(e["message"]) for e in found["events"]]
    assert lines and {line["batch_id"] for line in lines} == {"run-1"}
    assert {line["function"] for line in lines} == {"embedding-vector-compact"}
    assert all(e["logStreamName"].count("/") == 3 and "[$LATEST]" in e["logStreamName"]
               for e in found["events"])
    # each invocation is framed as Lambda frames it, with the request id the history records
    everything = cli.json("logs", "filter-log-events", "--log-group-name", COMPACT)["events"]
    starts = [e["message"] for e in everything if e["message"].startswith("START RequestId: ")]
    history = json.dumps(cli.json("get-execution-history", "run-1"))
    assert starts and all(s.split()[2] in history for s in starts)

    # the default output is one line per event: grep sees each message whole
    phrase = ("logs", "filter-log-events", "--log-group-name", COMPACT, "--filter-pattern", '"run-1"')
    plain = cli.run(*phrase).stdout.splitlines()
    assert len(plain) == len(cli.json(*phrase)["events"]) > len(lines)  # execution run-1 matches too
    assert all('"run-1"' in row for row in plain)
    paged = cli.json("logs", "filter-log-events", "--log-group-name", COMPACT, "--max-items", "1")
    assert len(paged["events"]) == 1 and paged["NextToken"]
    more = cli.json("logs", "filter-log-events", "--log-group-name", COMPACT, "--max-items", "1",
                    "--starting-token", paged["NextToken"])
    assert more["events"][0]["eventId"] != paged["events"][0]["eventId"]

    # the reference's misnamed group fails as CloudWatch answers, naming the right one
    wrong = cli.run("logs", "filter-log-events", "--log-group-name",
                    "/aws/lambda/embedding-mark-batches-complete-lambda-dev", code=2)
    assert "ResourceNotFoundException" in wrong.stderr and "does not exist" in wrong.stderr
    assert "/aws/lambda/embedding-mark-batches-complete-dev" in wrong.stderr
    bad = cli.run("logs", "filter-log-events", "--log-group-name", COMPACT, "--filter-pattern", "{batch_id}",
                  code=2)
    assert "Invalid filter pattern" in bad.stderr and "Traceback" not in bad.stderr


def test_objects_ls_and_cp_print_as_aws_s3_does(ran, tmp_path):
    cli, _ = ran
    listed = cli.run("objects", "ls", "s3://chromadb-dev-shared-buckets-vectors-c239843/intermediate/run-1/")
    assert listed.stdout.splitlines()[0] == " " * 27 + "PRE chunk-0/"
    keys = cli.json("objects", "ls", "intermediate/run-1/", "--recursive")["objects"]
    assert keys and all(o["key"].startswith("intermediate/run-1/chunk-") for o in keys)

    nothing = cli.run("objects", "ls", "chunk_groups/run-1/", code=1)  # not a grouped run: nothing
    assert nothing.stdout == ""
    assert nothing.stderr.splitlines()[0].startswith("nothing under chunk_groups/run-1/ in ")
    assert nothing.stderr.splitlines()[-1].startswith("next: embedding-ingest objects ls chunk_groups/ ")
    key = keys[0]["key"]
    streamed = cli.run("objects", "cp", f"s3://bucket/{key}", "-")
    copied = cli.run("objects", "cp", key, str(tmp_path / "copy"))
    assert (tmp_path / "copy").read_text() == streamed.stdout
    assert copied.stdout.startswith("download: s3://")
    missing = cli.run("objects", "cp", "s3://bucket/chunk_groups/NOPE/groups.json", str(tmp_path / "g"),
                      code=1)
    assert 'Key "chunk_groups/NOPE/groups.json" does not exist' in missing.stderr
    assert missing.stderr.rstrip().endswith("; try: embedding-ingest objects ls chunk_groups/NOPE/")


def test_an_empty_store_listed_whole_exits_0_and_an_empty_prefix_exits_1_as_aws_s3_ls(tmp_path):
    """`aws s3 ls s3://BUCKET/` of an empty bucket prints nothing and exits 0 (no key asked for, so
    none is missing); `aws s3 ls s3://BUCKET/PREFIX` that matches nothing exits 1. `objects ls` and the
    unlisted `ls` (its `--recursive`) do the same: a workspace that has imported but run nothing yet."""
    cli = fast_cli(tmp_path)
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))

    whole = [cli.run(*args) for args in (["objects", "ls"], ["objects", "ls", "s3://bucket/"], ["ls"])]
    missing = [cli.run(*args, code=1) for args in (["objects", "ls", "chunk_groups/"], ["ls", "lines/"])]

    assert all(done.stdout == "" for done in whole + missing)
    assert all(done.stderr.splitlines()[0].startswith("nothing in the object store yet (")
               and done.stderr.splitlines()[-1] == "next: embedding-ingest submit line" for done in whole)
    assert missing[0].stderr.splitlines()[0].startswith("nothing under chunk_groups/ in ")
    assert cli.json("ls")["objects"] == []
