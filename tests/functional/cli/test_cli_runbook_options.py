"""The AWS CLI's options on our execution verbs, as the reference's runbook uses them: state machines and
executions by ARN (any account; the reference's Pulumi-suffixed names), `--query` evaluated as the AWS
CLI does (JSON by default, `--output text` for scalars), and `batches reset --status PENDING STAGE`.
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
    assert "Bad value for --query" in bad.stderr and "Traceback" not in bad.stderr


def test_batches_reset_with_a_stage_selects_what_failed_executions_left(started):
    cli, _ = started
    nothing = cli.run("batches", "reset", "--status", "PENDING", "dev")  # the stage: dev by default
    assert "no batch was left by a failed execution" in nothing.stderr
    assert cli.json("batches", "reset", "--status", "PENDING", "dev")["count"] == 0
    other = cli.run("batches", "reset", "--status", "PENDING", "prod", code=2)
    assert "stage 'prod'" in other.stderr
