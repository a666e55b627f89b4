"""Least-privilege IAM for the stack: one role per Lambda function (its own log group, its object
prefixes, its ledger actions, the OpenAI key only for the poll functions) and a state machine role
that may invoke the seven functions and nothing else."""

from __future__ import annotations

from typing import Any

from embedding_ingest.aws.function_table import FUNCTIONS, LambdaFunction

BUCKET = "ChromaBucket"
TABLE = "LedgerTable"
SECRET_PARAMETER = "OpenAIApiKeySecretArn"

Statement = dict[str, Any]

S3_READ = ["s3:GetObject"]  # GetObject also authorizes HeadObject
S3_WRITE = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]


def _objects(prefixes: list[str]) -> list[dict[str, Any]]:
    return [{"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{{BUCKET}}}/{prefix}*"} for prefix in prefixes]


def assume_role(service: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}


def function_statements(function: LambdaFunction, log_group_id: str) -> list[Statement]:
    statements: list[Statement] = [
        {"Sid": "OwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": {"Fn::GetAtt": [log_group_id, "Arn"]}},
    ]
    reads, writes = function.prefixes(function.reads), function.prefixes(function.writes)
    if reads or writes:
        # Listing is not narrowed by prefix on purpose: without s3:ListBucket a missing key reads as
        # 403 AccessDenied instead of 404, and every "is it there yet?" check (idempotent re-runs,
        # conditional puts) would fail. Listing reveals key names, never contents.
        statements.append({"Sid": "ListBucket", "Effect": "Allow", "Action": ["s3:ListBucket"],
                           "Resource": {"Fn::GetAtt": [BUCKET, "Arn"]}})
    if reads:
        statements.append({"Sid": "ReadObjects", "Effect": "Allow", "Action": S3_READ,
                           "Resource": _objects(reads)})
    if writes:
        statements.append({"Sid": "WriteObjects", "Effect": "Allow", "Action": S3_WRITE,
                           "Resource": _objects(writes)})
    if function.ledger_actions:
        statements.append({"Sid": "Ledger", "Effect": "Allow", "Action": sorted(function.ledger_actions),
                           "Resource": [{"Fn::GetAtt": [TABLE, "Arn"]},
                                        {"Fn::Sub": f"${{{TABLE}.Arn}}/index/*"}]})
    if function.needs_provider:
        statements.append({"Sid": "OpenAIKey", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                           "Resource": {"Ref": SECRET_PARAMETER}})
    return statements


def function_role(function: LambdaFunction, log_group_id: str, *, extra_statements: list[Any] = (),
                  extra_properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """The role of one function: function_statements plus `extra_statements` (which may be Fn::If)."""
    return {"Type": "AWS::IAM::Role", "Properties": {
        "Description": f"{function.name}: only what this function touches",
        "AssumeRolePolicyDocument": assume_role("lambda.amazonaws.com"),
        "Policies": [{"PolicyName": "step-access", "PolicyDocument": {
            "Version": "2012-10-17",
            "Statement": function_statements(function, log_group_id) + list(extra_statements)}}],
        **(extra_properties or {}),
    }}


def state_machine_role(extra_statements: list[Statement] = ()) -> dict[str, Any]:
    """Invoke the seven step functions; `extra_statements` (log delivery, traces) besides."""
    return {"Type": "AWS::IAM::Role", "Properties": {
        "Description": "Both ingestion state machines: may invoke the seven step functions, deliver their "
                       "execution logs and write traces, nothing else",
        "AssumeRolePolicyDocument": assume_role("states.amazonaws.com"),
        "Policies": [{"PolicyName": "invoke-steps", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Sid": "InvokeSteps", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
                "Resource": [{"Fn::GetAtt": [f.logical_id, "Arn"]} for f in FUNCTIONS]},
                *extra_statements]}}],
    }}
