"""The reference's runbook (its Quick Start, Common Commands, Troubleshooting debug steps and Example
3), as the README's "The reference's runbook, verbatim" fence writes it (`aws stepfunctions` ->
`embedding-ingest`, `aws logs` -> `embedding-ingest logs`, `aws s3` -> `embedding-ingest objects`,
placeholders from shell variables), run command by command through bash at 80 columns on a workspace
with a word line execution that failed in MergeChunkGroupsInParallel (Example 3's scenario, made by
tests/support/failing_merge_run.py) whose 41 batches the Quick Start's line execution then publishes,
grouped; each command must find what it looks for, and every table it prints fits 80 columns. Then
the execution-inspecting commands again on the succeeded run. About 10 minutes under a load of 18 on 2
cores (three grouped merges' worth of work and some thirty CLI processes, each started warm by
tests/support/cli_runner.warm_command), hence its own timeout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import _FOREIGN_SETTINGS, FAST_LOCAL_PROVIDER, Cli, warm_command
from table_width import WIDTH, assert_tables_fit

REPO_ROOT = Path(__file__).resolve().parents[3]
README = REPO_ROOT / "README.md"
SAMPLE = REPO_ROOT / "src" / "embedding_ingest" / "data" / "sroie-sample.jsonl"
MARK = "<!-- readme-test: skip (the reference's runbook"
HISTORY = 'embedding-ingest get-execution-history --execution-arn "$EXECUTION_ARN" --query '
DESCRIBE = 'embedding-ingest describe-execution --execution-arn "$EXECUTION_ARN"'
LOGS = "embedding-ingest logs filter-log-events --log-group-name "
COMPACT_LOGS = LOGS + '"/aws/lambda/embedding-vector-compact-dev" --filter-pattern '
MARK_LOGS = LOGS + '"/aws/lambda/embedding-mark-batches-complete-dev"'
BUCKET = "embedding-ingest objects ls s3://chromadb-dev-shared-buckets-vectors-c239843/"


def runbook_commands(text: str) -> list[str]:
    """The fence after MARK as commands: continuation lines joined, comments and blank lines dropped."""
    after = text[text.index(MARK):]
    body = after.split("```bash\n", 1)[1].split("\n```", 1)[0]
    joined = re.sub(r"\\\n\s*", "", body)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _run(commands: list[str], env: dict[str, str], cwd: Path) -> list[subprocess.CompletedProcess]:
    """Each command in its own bash, after the assignments (NAME=...) before it; an assignment is
    checked by echoing what it set."""
    done, assignments = [], []
    for command in commands:
        assigned = re.match(r"^([A-Z_]+)=", command)
        script = "\n".join(["set -euo pipefail", *assignments, command,
                            f'echo "${assigned.group(1)}"' if assigned else ""])
        done.append(subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                                   timeout=900))
        if assigned:
            assignments.append(command)
    return done


@pytest.fixture
def bin_dir(tmp_path):
    """A directory whose `embedding-ingest` runs each command warm (cli_runner.warm_command)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    with warm_command(directory):
        yield directory


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_reference_runbook_runs_as_written_and_finds_what_it_looks_for(tmp_path, bin_dir):
    commands = runbook_commands(README.read_text(encoding="utf-8"))
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS}
    env.update(FAST_LOCAL_PROVIDER, EMBEDDING_INGEST_HOME=str(tmp_path / "home"), COLUMNS=str(WIDTH),
               PATH=f"{bin_dir}:{env['PATH']}")
    cli = Cli(home=tmp_path / "home", settings=dict(FAST_LOCAL_PROVIDER))
    cli.json("receipts", "import", str(SAMPLE))
    # Example 3: 41 line batches (> 4 chunks of 10 deltas: the run groups its chunks), and the run fails
    # merging group 0; QS-1 then publishes those batches (grouped too), QS-2 finds no word batch.
    cli.json("submit", "line", "--max-items-per-batch", "16")
    failed = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "support" / "failing_merge_run.py"),
                             "line", "line-failed-run"], env=env, capture_output=True, text=True, timeout=900)
    assert failed.returncode == 0, (failed.stdout[-2000:], failed.stderr[-2000:])

    done = _run(commands, env, tmp_path)
    by = {command: result for command, result in zip(commands, done, strict=True)}
    for result in done:  # the runbook's tables (history, executions, describe) at 80 columns
        assert_tables_fit(result.stdout)

    def result_of(start: str, nth: int = 0) -> subprocess.CompletedProcess:
        result = [r for c, r in by.items() if c.startswith(start)][nth]
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def ok(start: str, nth: int = 0) -> str:
        result = result_of(start, nth)
        assert result.returncode == 0, (start, result.stdout[-2000:], result.stderr[-2000:])
        return result.stdout

    def jq_values(start: str, nth: int = 0) -> list[dict]:
        return [json.loads(chunk) for chunk in re.split(r"(?<=})\n(?={)", ok(start, nth).strip()) if chunk]

    # Quick Start: both start by the reference's ARNs (placeholder account, Pulumi names)
    assert "SUCCEEDED" in ok("embedding-ingest start-execution", 0)
    assert "SUCCEEDED" in ok("embedding-ingest start-execution", 1)  # nothing to do
    execution_arn = ok("EXECUTION_ARN=").strip()
    assert execution_arn == "arn:aws:states:us-east-1:123456789012:execution:line-ingest:line-failed-run"
    assert "FAILED" in ok(DESCRIBE)
    failed_tasks = jq_values(HISTORY + "'events[?type==`TaskFailed`]'")
    assert failed_tasks and {t["name"] for t in failed_tasks} == {"invoke"}
    assert all(t["error"] for t in failed_tasks)

    # Common Commands
    assert "manual-run-" in ok("embedding-ingest list-executions")
    ok("embedding-ingest batches reset --status PENDING dev")
    batch_id = ok("BATCH_ID=").strip()
    assert batch_id == "line-failed-run"
    assert "groups.json" in ok(BUCKET + "chunk_groups/")
    assert "PRE chunk-0/" in ok(BUCKET + "intermediate/")

    # Troubleshooting 1-5
    sizes = jq_values(HISTORY + "'events[?type==`TaskSucceeded`]'")
    assert sizes and all(s["name"] == "invoke" and s["outputSize"] > 0 for s in sizes)
    entered = jq_values(HISTORY + "'events[?contains")
    assert entered and all(json.loads(e["input"]) for e in entered)
    ok("embedding-ingest objects cp")
    groups = ok("cat /tmp/groups.json").split("\n", 1)
    assert int(groups[0]) >= 1 and json.loads(groups[1])  # length, then the first group
    merge_logs = ok(COMPACT_LOGS + '"{')
    assert '"batch_id":"line-failed-run"' in merge_logs.replace(" ", "")
    assert "chunk_group" in ok(COMPACT_LOGS + '"merge_chunk_group"')
    status = json.loads(ok(DESCRIBE + " --query"))
    assert status["status"] == "FAILED" and status["error"]
    # MarkBatchesComplete was never reached by the failed run: no lines, and a next: hint
    assert "no events" in result_of(MARK_LOGS).stderr

    # the reference's own group name for MarkBatchesComplete has a stray -lambda: CloudWatch's answer
    slip = subprocess.run(["bash", "-c", 'embedding-ingest logs filter-log-events --log-group-name '
                           '"/aws/lambda/embedding-mark-batches-complete-lambda-dev" --filter-pattern x'],
                          env=env, capture_output=True, text=True, timeout=300)
    assert slip.returncode == 2 and "ResourceNotFoundException" in slip.stderr
    assert "/aws/lambda/embedding-mark-batches-complete-dev" in slip.stderr

    # the same filters on the grouped line run that succeeded
    succeeded = cli.json("list-executions", "--workflow", "line", "--status", "SUCCEEDED")["executions"][0]
    again = [c for c in commands if "$EXECUTION_ARN" in c or "$BATCH_ID" in c or c.startswith("cat ")]
    rerun = _run([f'EXECUTION_ARN="{succeeded["executionArn"]}"', f'BATCH_ID="{succeeded["name"]}"', *again],
                 env, tmp_path)
    by = {command: result for command, result in zip(again, rerun[2:], strict=True)}
    assert "SUCCEEDED" in ok(DESCRIBE)
    assert jq_values(HISTORY + "'events[?type==`TaskSucceeded`]'")
    assert jq_values(HISTORY + "'events[?contains")
    assert int(ok("cat /tmp/groups.json").split("\n", 1)[0]) >= 1
    assert succeeded["name"] in ok(MARK_LOGS)
