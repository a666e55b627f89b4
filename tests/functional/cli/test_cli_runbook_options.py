"""The AWS CLI's options on our execution verbs, as the reference's runbook uses them: state machines and
executions by ARN (any account; the reference's Pulumi-suffixed names), `--query` evaluated as the AWS
CLI does (JSON by default, `--output text` in its text format), and `batches reset --status PENDING STAGE`.
One workspace, one line execution started by ARN."""

from __future__ import annotations

import json

import pytest
from built_scenarios import cli_on_a_copy
from cli_runner import fast_cli
from pipeline import receipts_file

# The reference's Quick Start names the machine as its Pulumi stack did, with a placeholder account.
REFERENCE_MACHINE = "arn:aws:states:us-east-1:ACCOUNT:stateMachine:line-ingest-sf-dev-1554303"
LOCAL_EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:line-ingest:manual-run-1"


def _started_by_arn(root):
    cli = fast_cli(root)
    cli.json("receipts", "import", str(receipts_file(root, 2)))
    cli.json("submit", "line", "--max-items-per-batch", "400")
    return cli.json("start-execution", "--state-machine-arn", REFERENCE_MACHINE, "--name", "manual-run-1")


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    return cli_on_a_copy(tmp_path_factory, "cli-runbook-options", _started_by_arn)


def test_state_machines_and_executions_are_named_by_arn_in_any_account(started):
    cli, described = started
    assert (described["status"], described["executionArn"]) == ("SUCCEEDED", LOCAL_EXECUTION)
    assert described["stateMachineArn"] == "arn:aws:states:us-east-1:123456789012:stateMachine:line-ingest"

    # the reference's own ARN form (placeholder account, Pulumi name) designates the same execution
    reference_form = "arn:aws:states:us-east-1:ACCOUNT:execution:line-ingest-sf-dev-1554303:manual-run-1"
    for arn in (LOCAL_EXECUTION, reference_form):
        assert cli.json("describe-execution", "--execution-arn", arn)["executionArn"] == LOCAL_EXECUTION
    page = cli.json("get-execution-history", "--execution-arn", LOCAL_EXECUTION, "--max-results", "5",
                    "--reverse-order")
    assert len(page["events"]) == 5 and page["nextToken"]
    assert page["events"][0]["type"] == "ExecutionSucceeded"
    listed = cli.json("list-executions", "--state-machine-arn", REFERENCE_MACHINE, "--max-results", "10")
    assert [e["name"] for e in listed["executions"]] == ["manual-run-1"]

    # what designates nothing, or is no ARN, is refused as AWS refuses it, in one line, exit 2
    for args, said in (
            (("describe-execution", "--execution-arn", "arn:..."), "Invalid Arn"),
            (("describe-execution", "manual-run-1", "--execution-arn", LOCAL_EXECUTION), "not both"),
            (("describe-execution", "--execution-arn", LOCAL_EXECUTION.replace("manual-run-1", "nope")),
             "Execution Does Not Exist"),
            (("list-executions", "--state-machine-arn", REFERENCE_MACHINE.replace("line-ingest", "other")),
             "State Machine Does Not Exist")):
        refused = cli.run(*args, code=2)
        assert said in refused.stderr and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) <= 2, refused.stderr  # the error, maybe a hint


def test_query_filters_the_whole_response_before_formatting_as_the_aws_cli_does(started):
    cli, _ = started
    # the reference's jq filters, on what --query leaves: JSON without --output
    succeeded = json.loads(cli.run("get-execution-history", "--execution-arn", LOCAL_EXECUTION,
                                   "--query", "events[?type==`TaskSucceeded`]").stdout)
    assert succeeded and {e["taskSucceededEventDetails"]["resource"] for e in succeeded} == {"invoke"}
    assert all(isinstance(e["taskSucceededEventDetails"]["output"], str) for e in succeeded)
    status = json.loads(cli.run("describe-execution", "--execution-arn", LOCAL_EXECUTION,
                                "--query", "{status: status, error: error}").stdout)
    assert status == {"status": "SUCCEEDED", "error": None}
    entered = json.loads(cli.run(
        "get-execution-history", "--execution-arn", LOCAL_EXECUTION, "--query",
        "events[?contains(stateEnteredEventDetails.name || ``, `FinalMerge`)]").stdout)
    assert [e["stateEnteredEventDetails"]["name"] for e in entered] == ["PrepareFinalMerge", "FinalMerge"]
    assert all(json.loads(e["stateEnteredEventDetails"]["input"]) for e in entered)

    text = cli.run("describe-execution", "manual-run-1", "--query", "executionArn", "--output", "text")
    assert text.stdout == LOCAL_EXECUTION + "\n"
    bad = cli.run("describe-execution", "manual-run-1", "--query", "events[?type==", code=2)
    assert "bad value for --query" in bad.stderr and "Traceback" not in bad.stderr


def test_a_bad_query_is_one_error_line_saying_what_where_and_what_to_try(started):
    """The one error style: `error: WHAT (WHY); try: COMMAND`, whatever jmespath's message looked like."""
    cli, _ = started
    see = "try: embedding-ingest describe-execution manual-run-1 --output json"
    for query, why in (("items.[", "(incomplete expression: something is missing at its end)"),
                       ("status name", "(unexpected 'name', at character 8)"),
                       ("contains(null, 'x')", "(in function contains(), invalid type for value: None")):
        shown = cli.run("describe-execution", "manual-run-1", "--query", query, "--output", "text", code=2)
        line = shown.stderr.strip()
        assert len(line.splitlines()) == 1 and shown.stdout == "", shown
        assert line.startswith(f"error: bad value for --query {query!r} {why}"), line
        assert see in line and not line.rstrip().endswith(":"), line
    as_json = cli.run("describe-execution", "manual-run-1", "--query", "items.[", "--output", "json", code=2)
    document = json.loads(as_json.stdout)
    assert document["message"].startswith("bad value for --query 'items.[' (incomplete expression")
    assert document["try"].startswith("embedding-ingest describe-execution manual-run-1 --output json")


def test_batches_reset_with_a_stage_selects_what_failed_executions_left(started):
    cli, _ = started
    nothing = cli.run("batches", "reset", "--status", "PENDING", "dev")  # the stage: dev by default
    assert "no batch was left by a failed execution" in nothing.stderr
    assert cli.json("batches", "reset", "--status", "PENDING", "dev")["count"] == 0
    other = cli.run("batches", "reset", "--status", "PENDING", "prod", code=2)
    assert "stage 'prod'" in other.stderr


def test_output_text_prints_one_tab_separated_line_per_listed_item_as_the_aws_cli_does(started):
    """awscli's text rules: a list of objects under a key gives one `KEY<TAB>values...` line per item
    (scalar values in key order), a top-level scalar its own line, a nested list `KEY<TAB>value` lines."""
    cli, _ = started
    executions = cli.run("list-executions", "--max-results", "2", "--output", "text").stdout.splitlines()
    assert executions[0].split("\t")[:3] == ["EXECUTIONS", LOCAL_EXECUTION, "manual-run-1"]
    assert executions[0].split("\t")[-2] == "SUCCEEDED"
    assert executions[1:] == ["INPUTDETAILS\tTrue", "OUTPUTDETAILS\tTrue"]

    batches = cli.json("batches", "list", "--type", "line")["batches"]
    text = cli.run("batches", "list", "--type", "line", "--output", "text").stdout.splitlines()
    assert text[0] == str(len(batches))  # the top-level count
    rows = [line.split("\t") for line in text if line.startswith("BATCHES\t")]
    assert [row[1] for row in rows] == [batch["batch_id"] for batch in batches]
    assert all(len(row) == len(rows[0]) for row in rows) and "COMPLETED" in rows[0]
    refs = [line for line in text if line.startswith("RECEIPT_REFS\t")]
    assert len(refs) == sum(len(batch["receipt_refs"]) for batch in batches) > 0

    versions = cli.json("snapshots", "list", "line")["versions"]
    text = cli.run("snapshots", "list", "line", "--output", "text").stdout.splitlines()
    assert text[0] == "lines"
    rows = [line.split("\t") for line in text[1:]]
    assert [row[0] for row in rows] == ["VERSIONS"] * len(versions)
    assert [row[-1] for row in rows] == [version["version"] for version in versions]

    # a query that selects nothing prints nothing, as the AWS CLI does
    nothing = cli.run("list-executions", "--query", "executions[?name=='none'].name", "--output", "text")
    assert nothing.stdout == ""
