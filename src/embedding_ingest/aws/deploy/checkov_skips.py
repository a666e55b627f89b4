"""The checkov checks this template skips, each with its reason, written into each resource's Metadata
in checkov's own format ({"checkov": {"skip": [{"id": ..., "comment": ...}]}}, checkov's "Suppressing
and skipping policies" for CloudFormation), so `make lint` passes with the skips visible in the
rendered template rather than in a command line.

Control Tower's cfn-guard rules (`make guard`) have no in-template suppression; their skips are the
rule files the Makefile leaves out, listed there with the same kind of reason.
"""

from __future__ import annotations

from typing import Any

from embedding_ingest.aws.function_table import ALL_FUNCTIONS, LambdaFunction

Skip = tuple[str, str]

BY_TYPE: dict[str, list[Skip]] = {
    "AWS::Lambda::Function": [
        ("CKV_AWS_115", "no reserved concurrency: Lambda keeps 100 of an account's concurrency unreserved "
                        "and a new account's quota can be lower, so any reservation can fail the create"),
        ("CKV_AWS_116", "no dead-letter queue: a DLQ serves asynchronous invocations only; the steps are "
                        "invoked synchronously by Step Functions (Retry/Catch), the scheduled ones by "
                        "EventBridge Scheduler with its own retry policy, and their failures alarm"),
        ("CKV_AWS_173", "environment variables hold names and ARNs only (bucket, table, secret ARN), "
                        "encrypted at rest by Lambda; the API key is read from Secrets Manager"),
    ],
    "AWS::Logs::LogGroup": [
        ("CKV_AWS_158", "no customer managed key: CloudWatch Logs encrypts at rest; the logs carry ids and "
                        "counts, never item texts or keys"),
    ],
    "AWS::DynamoDB::Table": [
        ("CKV_AWS_119", "encrypted at rest with the AWS owned key; a customer managed key adds a key policy "
                        "and cost with no reader outside this stack"),
    ],
    "AWS::S3::Bucket": [
        ("CKV_AWS_18", "no access logging: it needs a second bucket; object-level auditing is CloudTrail "
                       "data events, the account's choice"),
    ],
    "AWS::SNS::Topic": [
        ("CKV_AWS_26", "not encrypted: CloudWatch alarms cannot publish to a topic under the AWS managed key "
                       "alias/aws/sns (its key policy cannot be changed); give AlarmTopicArn to use a topic "
                       "under a customer managed key"),
    ],
}

# CKV_AWS_117 (function inside a VPC), for functions without a VpcConfig.
_REACHES_OPENAI = ("not in a VPC: it calls api.openai.com, which from a VPC needs a NAT gateway the stack "
                   "cannot assume (README, Running on AWS)")
_AWS_APIS_ONLY = ("not in a VPC: it calls only AWS APIs with IAM; a VPC adds endpoints or a NAT and no "
                  "isolation (the functions that mount EFS run in the VPC: VpcConfig)")


def _vpc_skip(function: LambdaFunction) -> list[Skip]:
    if function.reads_snapshots:  # VpcConfig is an Fn::If: in the VPC exactly when it mounts EFS
        return []
    return [("CKV_AWS_117", _REACHES_OPENAI if function.needs_provider else _AWS_APIS_ONLY)]


def annotate(resources: dict[str, Any]) -> dict[str, Any]:
    """`resources` with each one's skips in its Metadata (in place; returned for convenience)."""
    functions = {function.logical_id: function for function in ALL_FUNCTIONS}
    for logical_id, resource in resources.items():
        skips = list(BY_TYPE.get(resource["Type"], []))
        if logical_id in functions:
            skips += _vpc_skip(functions[logical_id])
        if skips:
            resource.setdefault("Metadata", {})["checkov"] = {
                "skip": [{"id": check, "comment": reason} for check, reason in skips]}
    return resources
