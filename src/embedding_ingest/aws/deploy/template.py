"""The CloudFormation template of the whole stack, as a dict (`embedding-ingest aws template` writes it).

The state machine definitions are pipeline.definitions' output, unchanged but for the Task resources:
the builder is asked for `${<Function>Arn}` and the definition goes in as a `Definition` object with
those names in `DefinitionSubstitutions`, so AWS and the local engine run the same definition and
cfn-lint validates it against the ASL schema (a `DefinitionString` built with Fn::Sub it cannot read).

Parts: aws/deploy/iam.py (roles), operations_template.py (schedules, alarm topic, the operations
functions' alarms), network.py (EFS mode), observability.py (log groups, logging and tracing, metric
alarms), checkov_skips.py (the checks skipped, with reasons, in each resource's Metadata).
"""

from __future__ import annotations

import json
from typing import Any

from embedding_ingest.aws.deploy import checkov_skips, iam, network
from embedding_ingest.aws.deploy import observability as obs
from embedding_ingest.aws.deploy import operations_template as ops
from embedding_ingest.aws.deploy.operations_template import STATE_MACHINES
from embedding_ingest.aws.function_table import (
    ALL_FUNCTIONS,
    BY_NAME,
    MEMORY_PARAMETERS,
    NEW_ACCOUNT_MEMORY_MB,
    LambdaFunction,
)
from embedding_ingest.pipeline.definitions import build_definition
from embedding_ingest.pipeline.state_names import WorkflowKind
from embedding_ingest.stores.dynamo_schema import TTL_ATTRIBUTE, table_definition

INTERMEDIATE_PREFIXES = ("intermediate/", "chunks/", "chunk_groups/", "poll_manifests/")
INTERMEDIATE_EXPIRY_DAYS = 7
NONCURRENT_VERSION_EXPIRY_DAYS = 30
# Kept when the stack is deleted or the resource replaced, but deleted when the stack's own create
# rolls back, so a retried create does not fail on "already exists" (DeletionPolicy
# RetainExceptOnCreate, CloudFormation template reference).
STATEFUL = {"DeletionPolicy": "RetainExceptOnCreate", "UpdateReplacePolicy": "Retain"}
LAMBDA_MAX_MEMORY_MB = 10240


def _parameters(image_uri_param: bool) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "Stage": {"Type": "String", "Default": "dev", "AllowedPattern": "^[a-z0-9-]{1,16}$",
                  "Description": "Suffix of every named resource (dev, prod, ...)"},
        iam.SECRET_PARAMETER: {
            "Type": "String", "AllowedPattern": "^arn:aws[a-z-]*:secretsmanager:.+$",
            "Description": "ARN of the Secrets Manager secret holding the OpenAI API key "
                           "(a plain string or JSON with an OPENAI_API_KEY field)"},
        "AlarmTopicArn": {"Type": "String", "Default": "",
                          "Description": "SNS topic notified when an execution or a scheduled function "
                                         "fails (empty: a topic of this stack's own)"},
        **ops.parameters(),
        **network.parameters(),
        **obs.parameters(),
    }
    for name, (sizes, reference_mb) in MEMORY_PARAMETERS.items():
        parameters[name] = {"Type": "Number", "Default": NEW_ACCOUNT_MEMORY_MB, "MinValue": 128,
                            "MaxValue": LAMBDA_MAX_MEMORY_MB,
                            "Description": f"Memory (MB) of {sizes}; the reference sized it {reference_mb}. "
                                           f"New accounts are capped at {NEW_ACCOUNT_MEMORY_MB} until a "
                                           "quota increase (README: Running on AWS, sizing)"}
    if image_uri_param:
        parameters["ImageUri"] = {"Type": "String",
                                  "Description": "ECR image built from aws/deploy/Dockerfile"}
    return parameters


def _bucket() -> dict[str, Any]:
    expiring = [{"Id": f"expire-{prefix.rstrip('/').replace('_', '-')}", "Status": "Enabled",
                 "Prefix": prefix, "ExpirationInDays": INTERMEDIATE_EXPIRY_DAYS}
                for prefix in INTERMEDIATE_PREFIXES]
    housekeeping = {"Id": "tidy-versions-and-uploads", "Status": "Enabled",
                    "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_VERSION_EXPIRY_DAYS},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                    "ExpiredObjectDeleteMarker": True}
    return {"Type": "AWS::S3::Bucket", **STATEFUL, "Properties": {
                "VersioningConfiguration": {"Status": "Enabled"},
                "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                   "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
                "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "LifecycleConfiguration": {"Rules": [*expiring, housekeeping]},
            }}


def _bucket_policy() -> dict[str, Any]:
    bucket_arn = {"Fn::GetAtt": [iam.BUCKET, "Arn"]}
    # The objects' ARN as Fn::Join, the form Control Tower's CT.S3.PR.8 (TLS only) recognises.
    return {"Type": "AWS::S3::BucketPolicy", "Properties": {
        "Bucket": {"Ref": iam.BUCKET},
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [bucket_arn, {"Fn::Join": ["", [bucket_arn, "/*"]]}],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}}}


def _table() -> dict[str, Any]:
    definition = table_definition("unused")
    definition.pop("TableName")
    return {"Type": "AWS::DynamoDB::Table", **STATEFUL, "Properties": {
                "TableName": {"Fn::Sub": "embedding-ingest-${Stage}"},
                **definition,
                "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {"SSEEnabled": True},
            }}


def _function_name(function: LambdaFunction) -> dict[str, str]:
    return {"Fn::Sub": f"{function.name}-${{Stage}}"}


def _function(function: LambdaFunction, image_uri: Any) -> dict[str, Any]:
    environment: dict[str, Any] = {
        "DYNAMODB_TABLE_NAME": {"Ref": iam.TABLE},
        "CHROMADB_BUCKET": {"Ref": iam.BUCKET},
        "CHROMADB_STORAGE_MODE": "auto",
        "EMBEDDING_PROVIDER": "openai",
        "LOG_LEVEL": "INFO",
        "CALL_BUDGET_SECONDS": str(function.call_budget_s),
    }
    if function.needs_provider:
        environment["OPENAI_API_KEY_SECRET_ARN"] = {"Ref": iam.SECRET_PARAMETER}
    environment.update(obs.function_environment())
    environment.update(network.function_environment(function))
    environment.update(ops.function_environment(function))
    return {"Type": "AWS::Lambda::Function", "DependsOn": [f"{function.logical_id}LogGroup"], "Properties": {
        "FunctionName": _function_name(function),
        "Description": f"{function.name} ({function.command})",
        "PackageType": "Image",
        "Code": {"ImageUri": image_uri},
        "ImageConfig": {"Command": [function.command]},
        "Role": {"Fn::GetAtt": [f"{function.logical_id}Role", "Arn"]},
        "MemorySize": {"Ref": function.memory_parameter} if function.memory_parameter else function.memory_mb,
        "Timeout": function.timeout_s,
        "EphemeralStorage": {"Size": function.ephemeral_mb},
        "Environment": {"Variables": environment},
        **obs.function_properties(),
        **network.function_properties(function),
    }}


def substitution_name(function: LambdaFunction) -> str:
    """The DefinitionSubstitutions key standing for a function's ARN in the definitions."""
    return f"{function.logical_id}Arn"


def definition(kind: WorkflowKind) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Definition, DefinitionSubstitutions) of the `kind` state machine: the builder's definition with
    `${<Function>Arn}` as each Task's resource, and those names bound to the functions' ARNs."""
    used: dict[str, Any] = {}

    def resource_for(name: str) -> str:
        function = BY_NAME[name]
        used[substitution_name(function)] = {"Fn::GetAtt": [function.logical_id, "Arn"]}
        return f"${{{substitution_name(function)}}}"

    built = build_definition(kind, resource_for)
    if "${" in json.dumps(build_definition(kind, lambda name: "arn")):
        raise ValueError(f"the {kind} definition holds a literal '${{', which substitution would alter")
    return built, dict(sorted(used.items()))


def _state_machine(kind: WorkflowKind, log_group_id: str) -> dict[str, Any]:
    built, substitutions = definition(kind)
    return {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
        "StateMachineName": {"Fn::Sub": f"{kind}-ingest-${{Stage}}"},
        "StateMachineType": "STANDARD",
        "RoleArn": {"Fn::GetAtt": ["StateMachineRole", "Arn"]},
        "Definition": built,
        "DefinitionSubstitutions": substitutions,
        **obs.state_machine_properties(log_group_id),
    }}


def _failure_alarm(kind: WorkflowKind) -> dict[str, Any]:
    topic = ops.alarm_actions()
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmName": {"Fn::Sub": f"{kind}-ingest-${{Stage}}-executions-failed"},
        "AlarmDescription": f"A {kind} ingestion execution failed. Find it with `embedding-ingest "
                            f"list-executions --backend aws --workflow {kind} --status FAILED`, then read "
                            f"`embedding-ingest get-execution-history NAME --backend aws --workflow {kind} "
                            "--failed-only` (or the Step Functions console)",
        "Namespace": "AWS/States", "MetricName": "ExecutionsFailed",
        "Dimensions": [{"Name": "StateMachineArn", "Value": {"Ref": STATE_MACHINES[kind]}}],
        "Statistic": "Sum", "Period": 300, "EvaluationPeriods": 1, "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
        "AlarmActions": topic, "OKActions": topic,
    }}


def _outputs() -> dict[str, Any]:
    outputs: dict[str, Any] = {
        "BucketName": {"Description": "CHROMADB_BUCKET", "Value": {"Ref": iam.BUCKET}},
        "TableName": {"Description": "DYNAMODB_TABLE_NAME", "Value": {"Ref": iam.TABLE}},
    }
    for kind, logical_id in STATE_MACHINES.items():
        outputs[f"{logical_id}Arn"] = {"Description": f"{kind} ingestion state machine",
                                       "Value": {"Ref": logical_id}}
    for function in ALL_FUNCTIONS:
        outputs[f"{function.logical_id}Arn"] = {"Description": function.name,
                                                "Value": {"Fn::GetAtt": [function.logical_id, "Arn"]}}
    return outputs


def build_template(*, image_uri_param: bool = True, image_uri: str | None = None) -> dict[str, Any]:
    """The stack. With `image_uri_param` the image is the ImageUri parameter; otherwise `image_uri`
    (a fixed ECR image URI) is written into the template."""
    if not image_uri_param and not image_uri:
        raise ValueError("build_template(image_uri_param=False) needs image_uri")
    image = {"Ref": "ImageUri"} if image_uri_param else image_uri
    resources: dict[str, Any] = {iam.BUCKET: _bucket(), "ChromaBucketPolicy": _bucket_policy(),
                                 iam.TABLE: _table()}
    for function in ALL_FUNCTIONS:
        log_group_id = f"{function.logical_id}LogGroup"
        resources[log_group_id] = obs.function_log_group(function)
        resources[f"{function.logical_id}Role"] = iam.function_role(
            function, log_group_id,
            extra_statements=(obs.function_statements() + network.role_statements(function)
                              + ops.role_statements(function)),
            extra_properties=network.role_properties(function))
        resources[function.logical_id] = _function(function, image)
    resources["StateMachineRole"] = iam.state_machine_role(obs.state_machine_statements())
    for kind, logical_id in STATE_MACHINES.items():
        resources[f"{logical_id}LogGroup"] = obs.state_machine_log_group(kind)
        resources[logical_id] = _state_machine(kind, f"{logical_id}LogGroup")
        resources[f"{logical_id}FailedAlarm"] = _failure_alarm(kind)
    resources["PollFailuresAlarm"] = obs.poll_failures_alarm(ops.alarm_actions())
    resources.update(ops.resources())
    resources.update(network.resources())
    checkov_skips.annotate(resources)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "embedding-ingest: OpenAI Batch API embeddings -> published ChromaDB snapshots "
                       "(line and word ingestion state machines, their Lambda steps, bucket and ledger, the "
                       "schedules that run them and submit new items)",
        "Parameters": _parameters(image_uri_param),
        "Conditions": {**ops.conditions(), **network.conditions()},
        "Resources": resources,
        "Outputs": _outputs(),
    }
