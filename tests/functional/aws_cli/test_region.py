"""The AWS region comes from AWS_REGION / AWS_DEFAULT_REGION or --region; with none, an AWS command
says so in one line instead of a boto3 traceback."""

from __future__ import annotations

from cli_runner import fast_cli

NO_PROFILE = {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
              "AWS_REGION": "", "AWS_DEFAULT_REGION": "", "COLUMNS": "200"}  # rich wraps at 80 otherwise


def test_without_a_region_an_aws_command_fails_with_one_line(tmp_path):
    done = fast_cli(tmp_path).run("list-executions", "--backend", "aws", code=2, **NO_PROFILE)

    assert done.stderr.strip().splitlines() == [
        "error: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) or pass --region; "
        "try: embedding-ingest list-executions --help"]


def test_region_option_is_used(tmp_path, moto_endpoint):
    # moto has no state machines: getting that far means the client was built in the region given
    done = fast_cli(tmp_path).run("--region", "eu-west-1", "list-executions", "--backend", "aws", code=2,
                                  AWS_ENDPOINT_URL=moto_endpoint.url, **NO_PROFILE)

    assert "found 0 state machines named line-ingest*" in done.stderr
    assert "region" not in done.stderr and "Traceback" not in done.stderr
