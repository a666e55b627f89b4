"""The template's operations part: schedules that start one execution per slot and submit new items,
least-privilege roles for them, optional EFS for the snapshot cache, an alarm topic of its own, alarm
texts naming commands that exist, and every state machine Task resource a function of this stack."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from typer.testing import CliRunner

from embedding_ingest.aws.deploy.network import EFS_MOUNT_PATH, TMP_CHROMA_ROOT
from embedding_ingest.aws.deploy.template import build_template
from embedding_ingest.aws.function_table import ALL_FUNCTIONS, FUNCTIONS, OPERATIONS_FUNCTIONS
from embedding_ingest.aws.functions import handlers
from embedding_ingest.cli.app import app


@pytest.fixture(scope="module")
def template() -> dict:
    return build_template()


def _of_type(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _statements(role: dict) -> list[dict]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def _tasks(states: dict) -> list[dict]:
    """Every Task state, also those inside Map iterators and Parallel branches."""
    found = []
    for state in states.values():
        if state["Type"] == "Task":
            found.append(state)
        for nested in (state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])):
            if nested:
                found.extend(_tasks(nested["States"]))
    return found


def test_each_workflow_has_a_schedule_that_passes_the_slot_time_to_the_starter(template):
    schedules = _of_type(template, "AWS::Scheduler::Schedule")
    inputs = {}
    for schedule in schedules.values():
        props = schedule["Properties"]
        assert props["ScheduleExpression"]["Fn::Sub"].startswith("rate(${")
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}  # a slot's time is the time it fires
        assert props["Target"]["RoleArn"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}
        target = props["Target"]["Arn"]["Fn::GetAtt"][0]
        inputs[target, json.dumps(json.loads(props["Target"]["Input"]))] = props
    starter = [json.loads(event) for (target, event) in inputs if target == "StartExecutionFunction"]
    assert sorted(e["workflow"] for e in starter) == ["line", "word"]
    # Scheduler substitutes this keyword with the slot's time; the starter derives the name from it
    assert all(e["scheduled_time"] == "<aws.scheduler.scheduled-time>" for e in starter)
    assert [target for target, _ in inputs].count("SubmitFunction") == 1


def test_the_schedule_rates_are_parameters_defaulting_to_15_minutes(template):
    parameters = template["Parameters"]
    rates = {p["Properties"]["ScheduleExpression"]["Fn::Sub"]
             for p in _of_type(template, "AWS::Scheduler::Schedule").values()}
    assert rates == {"rate(${ScheduleRateMinutes} minutes)", "rate(${SubmitRateMinutes} minutes)"}
    assert parameters["ScheduleRateMinutes"]["Default"] == parameters["SubmitRateMinutes"]["Default"] == 15
    assert parameters["ScheduleRateMinutes"]["MinValue"] > 1  # "rate(1 minutes)" is not a valid expression


def test_the_scheduler_role_may_only_invoke_the_two_scheduled_functions(template):
    role = template["Resources"]["SchedulerRole"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "scheduler.amazonaws.com"}
    (statement,) = _statements(role)
    assert statement["Action"] == ["lambda:InvokeFunction"]
    assert statement["Resource"] == [{"Fn::GetAtt": ["SubmitFunction", "Arn"]},
                                     {"Fn::GetAtt": ["StartExecutionFunction", "Arn"]}]


def test_only_the_starter_may_start_executions_and_only_of_the_two_state_machines(template):
    starters = {}
    for function in ALL_FUNCTIONS:
        role = template["Resources"][f"{function.logical_id}Role"]
        for statement in _statements(role):
            statement = statement.get("Fn::If", [None, statement])[1]
            if any(a.startswith("states:") for a in statement["Action"]):
                starters[function.name] = statement
    assert list(starters) == ["embedding-start-execution"]
    grant = starters["embedding-start-execution"]
    # ListExecutions: it starts nothing while an execution of that workflow is RUNNING
    assert grant["Action"] == ["states:ListExecutions", "states:StartExecution"]
    assert grant["Resource"] == [{"Ref": "LineStateMachine"}, {"Ref": "WordStateMachine"}]
    role = template["Resources"]["StartExecutionFunctionRole"]
    assert {s["Sid"] for s in _statements(role)} == {"OwnLogs", "WriteTraces", "StartScheduledExecutions"}
    env = template["Resources"]["StartExecutionFunction"]["Properties"]["Environment"]["Variables"]
    assert env["LINE_STATE_MACHINE_ARN"] == {"Ref": "LineStateMachine"}
    assert env["WORD_STATE_MACHINE_ARN"] == {"Ref": "WordStateMachine"}


def test_the_submit_function_runs_the_submit_handler_with_ledger_and_key_but_no_objects(template):
    props = template["Resources"]["SubmitFunction"]["Properties"]
    assert props["FunctionName"] == {"Fn::Sub": "embedding-submit-${Stage}"}
    module, entrypoint = props["ImageConfig"]["Command"][0].rsplit(".", 1)
    assert module == handlers.__name__ and callable(getattr(handlers, entrypoint))
    assert entrypoint == "submit"
    actions = {a for s in _statements(template["Resources"]["SubmitFunctionRole"]) for a in s["Action"]}
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",
            "secretsmanager:GetSecretValue"} <= actions
    assert not any(a.startswith(("s3:", "states:", "lambda:")) for a in actions)


def test_every_state_machine_task_invokes_a_function_of_this_stack(template):
    step_ids = {f.logical_id for f in FUNCTIONS}
    role = template["Resources"]["StateMachineRole"]
    (invoke,) = [s for s in _statements(role) if s["Sid"] == "InvokeSteps"]
    invokable = {resource["Fn::GetAtt"][0] for resource in invoke["Resource"]}
    assert invokable == step_ids
    for machine in ("LineStateMachine", "WordStateMachine"):
        props = template["Resources"][machine]["Properties"]
        tasks = _tasks(props["Definition"]["States"])
        assert tasks
        for task in tasks:
            assert task["Resource"] == "arn:aws:states:::lambda:invoke"
            function = task["Parameters"]["FunctionName"]
            (name,) = re.fullmatch(r"\$\{(\w+)\}", function).groups()
            logical_id, attribute = props["DefinitionSubstitutions"][name]["Fn::GetAtt"]
            assert logical_id in step_ids and attribute == "Arn", function
            assert template["Resources"][logical_id]["Type"] == "AWS::Lambda::Function"


def test_functions_that_read_snapshots_mount_efs_at_chroma_root_when_given_else_use_tmp(template):
    required = json.dumps(template["Conditions"]["HasEfs"])
    assert all(name in required for name in ("EfsFileSystemId", "EfsAccessPointId", "EfsSubnetIds",
                                             "EfsSecurityGroupIds"))
    mounted = set()
    for function in ALL_FUNCTIONS:
        props = template["Resources"][function.logical_id]["Properties"]
        if "FileSystemConfigs" not in props:
            assert "CHROMA_ROOT" not in props["Environment"]["Variables"]
            continue
        mounted.add(function.name)
        (config,) = props["FileSystemConfigs"]["Fn::If"][1]
        assert config["LocalMountPath"] == EFS_MOUNT_PATH
        assert "${EfsAccessPointId}" in config["Arn"]["Fn::Sub"]
        assert props["FileSystemConfigs"]["Fn::If"][2] == {"Ref": "AWS::NoValue"}
        assert props["VpcConfig"]["Fn::If"][1]["SubnetIds"] == {"Ref": "EfsSubnetIds"}
        assert props["Environment"]["Variables"]["CHROMA_ROOT"] == {"Fn::If": ["HasEfs", EFS_MOUNT_PATH,
                                                                              TMP_CHROMA_ROOT]}
        role = template["Resources"][f"{function.logical_id}Role"]
        (efs,) = [s["Fn::If"] for s in _statements(role) if "Fn::If" in s]
        assert efs[0] == "HasEfs" and efs[2] == {"Ref": "AWS::NoValue"}
        assert efs[1]["Action"] == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
        assert "elasticfilesystem:AccessPointArn" in efs[1]["Condition"]["StringEquals"]
    assert mounted == {"embedding-vector-compact", "embedding-mark-batches-complete"}


def test_efs_mode_gives_the_vpc_s3_and_dynamodb_gateway_endpoints_on_the_named_route_tables(template):
    """The two functions in the VPC reach S3 and DynamoDB through gateway endpoints (no NAT: they never
    call OpenAI); none is created without EFS, or when the operator says the VPC has them."""
    endpoints = _of_type(template, "AWS::EC2::VPCEndpoint")
    services = {}
    for endpoint in endpoints.values():
        props = endpoint["Properties"]
        assert endpoint["Condition"] == "CreateEfsGatewayEndpoints"
        assert props["VpcEndpointType"] == "Gateway"
        assert (props["VpcId"], props["RouteTableIds"]) == ({"Ref": "EfsVpcId"}, {"Ref": "EfsRouteTableIds"})
        services[props["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1]] = endpoint
    assert set(services) == {"s3", "dynamodb"}
    condition = json.dumps(template["Conditions"]["CreateEfsGatewayEndpoints"])
    assert all(part in condition for part in ('"Condition": "HasEfs"', "CreateGatewayEndpoints", "EfsVpcId",
                                              "EfsRouteTableIds"))
    readers = [f for f in ALL_FUNCTIONS if "VpcConfig" in template["Resources"][f.logical_id]["Properties"]]
    assert readers and not any(f.needs_provider for f in readers)  # nothing in the VPC calls OpenAI


def test_alarms_notify_the_given_topic_or_one_of_the_stacks_own(template):
    topic = template["Resources"]["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic" and topic["Condition"] == "CreateAlarmTopic"
    assert template["Conditions"]["CreateAlarmTopic"] == {"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}
    # a list of one Fn::If (Control Tower's CT.CLOUDWATCH.PR.1 wants a list of actions)
    expected = [{"Fn::If": ["HasAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}]
    alarms = _of_type(template, "AWS::CloudWatch::Alarm")
    # failed executions of each workflow, errors of the scheduled functions, batches that could not be polled
    assert len(alarms) == 2 + len(OPERATIONS_FUNCTIONS) + 1
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == expected


def _commands_in(text: str) -> list[list[str]]:
    return [shlex.split(command)[1:] for command in re.findall(r"`(embedding-ingest [^`]+)`", text)]


def test_every_command_an_alarm_names_exists_with_those_options(template):
    commands = [command for alarm in _of_type(template, "AWS::CloudWatch::Alarm").values()
                for command in _commands_in(alarm["Properties"]["AlarmDescription"])]
    assert len(commands) >= 4
    for command in commands:
        # --help is eager but parsing comes first: an unknown command or option still fails
        result = CliRunner().invoke(app, [*command, "--help"])
        assert result.exit_code == 0, f"{command}: {result.output}"
