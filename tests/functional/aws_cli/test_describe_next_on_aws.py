"""`describe-execution --backend aws`: its `next:` names a command that looks at AWS, not the local
engine (new-user trial, session 6)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from embedding_ingest.cli.app import app


def test_describe_execution_on_aws_says_a_next_step_on_aws(deployed):
    started = CliRunner().invoke(app, ["start-execution", "line", "--name", "run-3", "--no-wait",
                                       "--backend", "aws", "--output", "json"])
    assert started.exit_code == 0, started.output
    on_aws = "embedding-ingest describe-execution run-3 --backend aws"
    assert json.loads(started.stdout)["summary"]["next"] == on_aws  # start-execution --backend aws too

    described = CliRunner().invoke(app, ["describe-execution", "run-3", "--backend", "aws"],
                                   env={"COLUMNS": "80"})
    assert described.exit_code == 0, described.output
    hints = [line for line in described.stderr.splitlines() if line.startswith("next: ")]
    assert hints == ["next: embedding-ingest describe-execution run-3 --backend aws"]

    # the hint runs as it is written (without --backend aws it would look in the local workspace)
    again = CliRunner().invoke(app, [*hints[0].removeprefix("next: embedding-ingest ").split(), "--output",
                                     "json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["summary"]["next"] == hints[0].removeprefix("next: ")
