"""The README's deploy commands ("Deploying"), verbatim, in one shell, with the real AWS CLI (PyPI awscli)
against moto's server: the endpoint comes only from AWS_ENDPOINT_URL, `docker` is a stand-in on PATH that
records its arguments (nothing here can build or push an image), and `git` runs in a scratch repository.

The endpoint is http://localhost:PORT, not 127.0.0.1: `aws cloudformation deploy --s3-bucket` uploads the
template and hands CloudFormation a path-style URL on the S3 endpoint, and moto's CloudFormation takes
the bucket from the URL's path only when the host says "localhost" (otherwise from the first label of
the host: bucket "127", NoSuchBucket).

What moto's CloudFormation does not model, and how each is checked instead:
- AWS::CloudWatch::Alarm, AWS::S3::BucketPolicy, AWS::Scheduler::Schedule (and AWS::SNS::Subscription,
  absent by default): moto creates nothing for them and lists one row each without ids (as it does for
  a resource whose condition is false). Each is created
  here through its own API on moto (PutMetricAlarm, PutBucketPolicy, CreateSchedule) from the template's
  properties resolved against what the stack created.
- AWS::StepFunctions::StateMachine reads DefinitionString only: with Definition + DefinitionSubstitutions
  it creates the machine with an empty definition and ignores LoggingConfiguration and
  TracingConfiguration. The definition is resolved with the functions' real ARNs, passes statelint, and
  is put on the machine with its logging and tracing configuration through UpdateStateMachine.
- `describe-stacks` shows no Outputs after a change-set deploy (moto does not rebuild them): its output
  is not asserted.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from iam_check import ACCOUNT, REGION, TemplateResolver
from moto_server import MotoEndpoint
from readme_fences import bash_fences
from template_checks import resolved_definition

from embedding_ingest.aws.deploy.template import build_template
from embedding_ingest.aws.function_table import ALL_FUNCTIONS
from embedding_ingest.stores.dynamo_schema import table_definition

REPO_ROOT = Path(__file__).resolve().parents[3]
README = REPO_ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
STACK = "embedding-ingest-dev"
MOTO_UNMODELLED = {"AWS::CloudWatch::Alarm", "AWS::S3::BucketPolicy", "AWS::Scheduler::Schedule",
                   "AWS::SNS::Subscription"}
DOCKER_SHIM = """#!/bin/sh
# Records each call (argv as JSON, and what came on stdin for login) instead of running docker.
stdin=""; if [ "$1" = login ]; then stdin=$(cat); fi
python3 -c 'import json, sys; print(json.dumps({"argv": sys.argv[2:], "stdin": sys.argv[1]}))' \\
  "$stdin" "$@" >> "$DOCKER_CALLS"
"""


@pytest.fixture
def shell(tmp_path: Path, moto_endpoint: MotoEndpoint) -> dict[str, Any]:
    """A scratch clone (git repository with src/), PATH with the project's venv (embedding-ingest, aws)
    and the docker stand-in, AWS settings pointing at moto through AWS_ENDPOINT_URL only."""
    clone, bin_dir = tmp_path / "clone", tmp_path / "bin"
    clone.mkdir()
    bin_dir.mkdir()
    (clone / "src").symlink_to(REPO_ROOT / "src")
    docker = bin_dir / "docker"
    docker.write_text(DOCKER_SHIM)
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "aws-config").write_text("[default]\n")
    port = moto_endpoint.url.rsplit(":", 1)[1]
    env = {
        "PATH": f"{bin_dir}:{VENV_BIN}:{os.environ['PATH']}", "HOME": str(tmp_path),
        "AWS_ENDPOINT_URL": f"http://localhost:{port}", "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-config"),
        "OPENAI_API_KEY": "sk-test-readme-deploy", "DOCKER_CALLS": str(tmp_path / "docker-calls.jsonl"),
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "scratch"]):
        subprocess.run(["git", *args], cwd=clone, env=env, check=True)
    return {"clone": clone, "env": env, "docker_calls": tmp_path / "docker-calls.jsonl"}


def _physical(rows: list[dict]) -> dict[str, str]:
    return {row["LogicalResourceId"]: row["PhysicalResourceId"] for row in rows
            if row.get("LogicalResourceId")}


def test_the_readme_deploy_commands_create_the_stack_as_the_template_declares(shell, moto_endpoint):
    fences, skipped = bash_fences(README.read_text(encoding="utf-8"), ("Deploying",))
    assert len(fences) == 3 and not skipped, "the README's Deploying section lost its three command blocks"
    script = "set -euo pipefail\nset -x\n" + "\n".join(fences) + "\n"

    done = subprocess.run(["bash", "-c", script], cwd=shell["clone"], env=shell["env"], capture_output=True,
                          text=True, timeout=600)

    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "Successfully created/updated stack - embedding-ingest-dev" in done.stdout
    docker = [json.loads(line) for line in shell["docker_calls"].read_text().splitlines()]
    (login,) = [call for call in docker if call["argv"][0] == "login"]
    assert login["stdin"].strip(), "docker login got no password on stdin"
    (build,) = [call["argv"] for call in docker if call["argv"][0] == "build"]
    # Lambda runs x86_64 and refuses image indexes (which BuildKit's provenance attestation makes)
    assert "--platform" in build and build[build.index("--platform") + 1] == "linux/amd64"
    assert "--provenance=false" in build
    image = build[build.index("-t") + 1]
    assert image.startswith(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/embedding-ingest:")
    assert ["push", image] in [call["argv"] for call in docker]

    template = json.loads((shell["clone"] / "build" / "stack.json").read_text())
    assert len(json.dumps(template)) > 51_200  # why the README deploys through --s3-bucket
    cfn = moto_endpoint.client("cloudformation")
    (stack,) = cfn.describe_stacks(StackName=STACK)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    rows = cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    physical = _physical(rows)
    conditions = {"CreateAlarmTopic": True, "SchedulesOn": True}  # the defaults the README deploys with
    created = {name: r for name, r in template["Resources"].items()
               if conditions.get(r.get("Condition", ""), "Condition" not in r)}
    modelled = {name for name, r in created.items() if r["Type"] not in MOTO_UNMODELLED}
    unmodelled = {name: r for name, r in created.items() if r["Type"] in MOTO_UNMODELLED}
    assert set(physical) == modelled
    # moto lists a row without ids for each resource it did not create: unmodelled, or its condition false
    assert len(unmodelled) == 9  # 5 alarms, 3 schedules, the bucket policy
    assert len(rows) - len(physical) == len(template["Resources"]) - len(modelled)
    assert all(row["ResourceStatus"] == "CREATE_COMPLETE" for row in rows)

    _check_modelled(moto_endpoint, template, physical, image)
    resolver = _resolver(moto_endpoint, template, physical)
    _check_definitions(moto_endpoint, template, physical, resolver, shell["clone"])
    _check_unmodelled(moto_endpoint, unmodelled, physical, resolver)


def _check_modelled(endpoint: MotoEndpoint, template: dict, physical: dict[str, str], image: str) -> None:
    table = endpoint.client("dynamodb").describe_table(TableName=physical["LedgerTable"])["Table"]
    schema = table_definition("any")
    assert table["KeySchema"] == schema["KeySchema"]
    assert ({i["IndexName"] for i in table["GlobalSecondaryIndexes"]}
            == {i["IndexName"] for i in schema["GlobalSecondaryIndexes"]})
    endpoint.client("s3").head_bucket(Bucket=physical["ChromaBucket"])
    sfn = endpoint.client("stepfunctions")
    for kind in ("line", "word"):
        machine = sfn.describe_state_machine(stateMachineArn=physical[f"{kind.capitalize()}StateMachine"])
        assert machine["name"] == f"{kind}-ingest-dev"
        assert machine["roleArn"].endswith(f"/{physical['StateMachineRole']}")
    lambdas = endpoint.client("lambda")
    for function in ALL_FUNCTIONS:
        config = lambdas.get_function(FunctionName=physical[function.logical_id])
        assert config["Configuration"]["FunctionName"] == f"{function.name}-dev"
        assert config["Configuration"]["MemorySize"] <= 3008  # a new account's limit
        assert config["Configuration"]["Timeout"] == function.timeout_s
        assert config["Code"]["ImageUri"] == image
    groups = endpoint.client("logs").describe_log_groups(logGroupNamePrefix="/aws/vendedlogs/states/")
    assert {g["logGroupName"] for g in groups["logGroups"]} >= {"/aws/vendedlogs/states/line-ingest-dev",
                                                                "/aws/vendedlogs/states/word-ingest-dev"}
    assert all(g["retentionInDays"] == 365 for g in groups["logGroups"])


def _resolver(endpoint: MotoEndpoint, template: dict, physical: dict[str, str]) -> TemplateResolver:
    """Ref and GetAtt of what the stack created, as CloudFormation would resolve them."""
    attributes: dict[str, str] = {}
    lambdas, iam = endpoint.client("lambda"), endpoint.client("iam")
    for function in ALL_FUNCTIONS:
        attributes[f"{function.logical_id}.Arn"] = lambdas.get_function_configuration(
            FunctionName=physical[function.logical_id])["FunctionArn"]
    for logical_id, name in physical.items():
        if logical_id.endswith("Role"):
            attributes[f"{logical_id}.Arn"] = iam.get_role(RoleName=name)["Role"]["Arn"]
    attributes["ChromaBucket.Arn"] = f"arn:aws:s3:::{physical['ChromaBucket']}"
    logs = endpoint.client("logs")
    for logical_id, name in physical.items():
        if logical_id.endswith("LogGroup"):
            (group,) = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
            attributes[f"{logical_id}.Arn"] = group["arn"]
    defaults = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    refs = {**defaults, **physical, "Stage": "dev"}
    return TemplateResolver(refs, attributes, conditions={"CreateAlarmTopic": True, "SchedulesOn": True})


def _check_definitions(endpoint: MotoEndpoint, template: dict, physical: dict[str, str],
                       resolver: TemplateResolver, scratch: Path) -> None:
    sfn = endpoint.client("stepfunctions")
    arns = {f.name: resolver.attributes[f"{f.logical_id}.Arn"] for f in ALL_FUNCTIONS}
    for kind in ("line", "word"):
        logical_id = f"{kind.capitalize()}StateMachine"
        definition = resolved_definition(template, kind, arns.__getitem__)
        path = scratch / f"{kind}-definition.json"
        path.write_text(json.dumps(definition))
        linted = subprocess.run([str(VENV_BIN / "statelint"), str(path)], capture_output=True, text=True)
        assert linted.returncode == 0, linted.stdout + linted.stderr
        props = resolver.resolve(template["Resources"][logical_id]["Properties"])
        logging, tracing = props["LoggingConfiguration"], props["TracingConfiguration"]
        groups = [d["CloudWatchLogsLogGroup"]["LogGroupArn"] for d in logging["Destinations"]]
        destinations = [{"cloudWatchLogsLogGroup": {"logGroupArn": arn}} for arn in groups]
        sfn.update_state_machine(
            stateMachineArn=physical[logical_id], definition=json.dumps(definition),
            loggingConfiguration={"level": logging["Level"], "destinations": destinations,
                                  "includeExecutionData": logging["IncludeExecutionData"]},
            tracingConfiguration={"enabled": tracing["Enabled"]})
        machine = sfn.describe_state_machine(stateMachineArn=physical[logical_id])
        assert json.loads(machine["definition"]) == definition
        assert machine["loggingConfiguration"]["level"] == "ERROR"
        assert machine["tracingConfiguration"] == {"enabled": True}


def _check_unmodelled(endpoint: MotoEndpoint, unmodelled: dict[str, dict], physical: dict[str, str],
                      resolver: TemplateResolver) -> None:
    topic = physical["AlarmTopic"]
    cloudwatch, s3, scheduler = (endpoint.client(s) for s in ("cloudwatch", "s3", "scheduler"))
    for name, resource in unmodelled.items():
        props = resolver.resolve(resource["Properties"])
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            assert props["AlarmActions"] == [topic] == props["OKActions"]
            cloudwatch.put_metric_alarm(**props)
            (alarm,) = cloudwatch.describe_alarms(AlarmNames=[props["AlarmName"]])["MetricAlarms"]
            assert alarm["AlarmActions"] == [topic], name
        elif resource["Type"] == "AWS::S3::BucketPolicy":
            s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))
            stored = json.loads(s3.get_bucket_policy(Bucket=props["Bucket"])["Policy"])
            assert stored["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        elif resource["Type"] == "AWS::Scheduler::Schedule":
            target = props["Target"]
            assert target["Arn"] in resolver.attributes.values()  # a function of this stack
            scheduler.create_schedule(**props)
            schedule = scheduler.get_schedule(Name=props["Name"])
            assert schedule["State"] == "ENABLED" and json.loads(schedule["Target"]["Input"])
        else:
            raise AssertionError(f"{name}: {resource['Type']} is neither created by moto nor checked here")


def test_efs_mode_routes_s3_and_dynamodb_through_gateway_endpoints_of_the_given_route_tables(moto_endpoint):
    """The two functions that mount EFS run in the VPC; the stack gives the VPC gateway endpoints for S3
    and DynamoDB on the subnets' route tables (ids of a file system and access point are only passed
    through: moto's Lambda does not mount anything)."""
    ec2 = moto_endpoint.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    group = ec2.create_security_group(VpcId=vpc, GroupName="nfs", Description="NFS to EFS")["GroupId"]
    parameters = {"Stage": "efs", "ImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/embedding-ingest:1",
                  "OpenAIApiKeySecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:openai-Ab12Cd",
                  "EfsFileSystemId": "fs-0123abcd", "EfsAccessPointId": "fsap-0123abcd4567ef89",
                  "EfsSubnetIds": subnet, "EfsSecurityGroupIds": group, "EfsVpcId": vpc,
                  "EfsRouteTableIds": table}
    cfn = moto_endpoint.client("cloudformation")
    cfn.create_stack(StackName="embedding-ingest-efs", TemplateBody=json.dumps(build_template()),
                     Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
    cfn.get_waiter("stack_create_complete").wait(StackName="embedding-ingest-efs",
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 120})

    physical = _physical(cfn.list_stack_resources(StackName="embedding-ingest-efs")["StackResourceSummaries"])
    endpoints = ec2.describe_vpc_endpoints(VpcEndpointIds=[physical["S3GatewayEndpoint"],
                                                           physical["DynamoDbGatewayEndpoint"]])["VpcEndpoints"]
    assert sorted(e["ServiceName"] for e in endpoints) == [f"com.amazonaws.{REGION}.dynamodb",
                                                           f"com.amazonaws.{REGION}.s3"]
    assert all((e["VpcEndpointType"], e["VpcId"], e["RouteTableIds"]) == ("Gateway", vpc, [table])
               for e in endpoints)
    (routes,) = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"]
    via_endpoints = {r.get("GatewayId") for r in routes["Routes"] if r.get("DestinationPrefixListId")}
    assert via_endpoints == {e["VpcEndpointId"] for e in endpoints}  # the subnet's way to S3 and DynamoDB
    lambdas = moto_endpoint.client("lambda")
    in_vpc = set()
    for function in ALL_FUNCTIONS:
        config = lambdas.get_function_configuration(FunctionName=physical[function.logical_id])
        if config.get("VpcConfig", {}).get("SubnetIds"):
            in_vpc.add(function.name)
            assert config["VpcConfig"]["SubnetIds"] == [subnet]
            assert config["VpcConfig"]["SecurityGroupIds"] == [group]
            assert config["Environment"]["Variables"]["CHROMA_ROOT"] == "/mnt/chroma"
    assert in_vpc == {f.name for f in ALL_FUNCTIONS if f.reads_snapshots}
    assert not any(f.needs_provider for f in ALL_FUNCTIONS if f.name in in_vpc)  # no NAT needed
