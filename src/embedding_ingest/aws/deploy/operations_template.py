"""The operations part of the CloudFormation template: what makes the stack run by itself and tell
someone when it fails.

- EventBridge Scheduler schedules: one per workflow invoking embedding-start-execution with the slot's
  `<aws.scheduler.scheduled-time>` (one execution per slot, see aws/functions/scheduled.py), one invoking
  embedding-submit. Their role may invoke those two functions and nothing else; the starter's role may
  call states:StartExecution and states:ListExecutions (it starts nothing while an execution of that
  workflow runs) on the two state machines and nothing else.
- Alarms notify AlarmTopicArn, or a topic of the stack's own when none is given (AlarmEmail, if set,
  is subscribed to it).
"""

from __future__ import annotations

import json
from typing import Any

from embedding_ingest.aws.deploy.iam import assume_role
from embedding_ingest.aws.function_table import (
    OPERATIONS_FUNCTIONS,
    START_EXECUTION,
    SUBMIT,
    LambdaFunction,
)
from embedding_ingest.aws.functions.scheduled import SCHEDULED_TIME
from embedding_ingest.aws.stepfunctions import ARN_VARIABLES
from embedding_ingest.pipeline.state_names import WorkflowKind

STATE_MACHINES: dict[WorkflowKind, str] = {"line": "LineStateMachine", "word": "WordStateMachine"}
DEFAULT_RATE_MINUTES = 15
ALARM_TOPIC = "AlarmTopic"
SCHEDULER_ROLE = "SchedulerRole"
LOGICAL_IDS = {f.name: f.logical_id for f in OPERATIONS_FUNCTIONS}


def parameters() -> dict[str, Any]:
    rate = {"Type": "Number", "Default": DEFAULT_RATE_MINUTES, "MinValue": 2, "MaxValue": 1440}
    return {
        "ScheduleRateMinutes": {**rate, "Description": "Minutes between scheduled executions of each "
                                                       "state machine (one execution per slot)"},
        "SubmitRateMinutes": {**rate, "Description": "Minutes between submissions of new items"},
        "SchedulesEnabled": {"Type": "String", "Default": "true", "AllowedValues": ["true", "false"],
                             "Description": "false: the schedules exist but do not fire"},
        "AlarmEmail": {"Type": "String", "Default": "",
                       "Description": "Subscribed to the stack's alarm topic when AlarmTopicArn is empty"},
    }


def conditions() -> dict[str, Any]:
    no_topic = {"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}
    return {
        "HasAlarmTopic": {"Fn::Not": [no_topic]},
        "CreateAlarmTopic": no_topic,
        "SubscribeAlarmEmail": {"Fn::And": [
            no_topic, {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}]},
        "SchedulesOn": {"Fn::Equals": [{"Ref": "SchedulesEnabled"}, "true"]},
    }


def alarm_actions() -> list[Any]:
    """The given topic, else the stack's own. A list holding the Fn::If (not an Fn::If of lists), so
    Control Tower's CT.CLOUDWATCH.PR.1 check sees a list of actions."""
    return [{"Fn::If": ["HasAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": ALARM_TOPIC}]}]


# -- per-function additions (used by template._function and iam) -----------------------------------------
def function_environment(function: LambdaFunction) -> dict[str, Any]:
    if not function.starts_executions:
        return {}
    return {ARN_VARIABLES[kind]: {"Ref": logical_id} for kind, logical_id in STATE_MACHINES.items()}


def role_statements(function: LambdaFunction) -> list[Any]:
    """Statements a function's role gets beyond its steps' object/ledger/key grants."""
    if not function.starts_executions:
        return []
    return [{"Sid": "StartScheduledExecutions", "Effect": "Allow",
             "Action": ["states:ListExecutions", "states:StartExecution"],
             "Resource": [{"Ref": logical_id} for logical_id in STATE_MACHINES.values()]}]


# -- resources of their own -------------------------------------------------------------------------------
def _schedule(name: str, description: str, target: str, event: dict[str, Any], rate_parameter: str
              ) -> dict[str, Any]:
    return {"Type": "AWS::Scheduler::Schedule", "Properties": {
        "Name": {"Fn::Sub": f"{name}-${{Stage}}"},
        "Description": description,
        "ScheduleExpression": {"Fn::Sub": f"rate(${{{rate_parameter}}} minutes)"},
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": {"Fn::If": ["SchedulesOn", "ENABLED", "DISABLED"]},
        "Target": {
            "Arn": {"Fn::GetAtt": [target, "Arn"]},
            "RoleArn": {"Fn::GetAtt": [SCHEDULER_ROLE, "Arn"]},
            "Input": json.dumps(event, sort_keys=True),
            # A slot missed for longer than one default period is not worth starting late.
            "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 900},
        },
    }}


def _scheduler_role() -> dict[str, Any]:
    return {"Type": "AWS::IAM::Role", "Properties": {
        "Description": "EventBridge Scheduler: may invoke the submit and start-execution functions, "
                       "nothing else",
        "AssumeRolePolicyDocument": assume_role("scheduler.amazonaws.com"),
        "Policies": [{"PolicyName": "invoke-operations", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Sid": "InvokeOperations", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
                "Resource": [{"Fn::GetAtt": [f.logical_id, "Arn"]} for f in OPERATIONS_FUNCTIONS]}]}}],
    }}


def _errors_alarm(function: LambdaFunction, description: str) -> dict[str, Any]:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmName": {"Fn::Sub": f"{function.name}-${{Stage}}-errors"},
        "AlarmDescription": description,
        "Namespace": "AWS/Lambda", "MetricName": "Errors",
        "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function.logical_id}}],
        "Statistic": "Sum", "Period": 900, "EvaluationPeriods": 1, "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
        "AlarmActions": alarm_actions(), "OKActions": alarm_actions(),
    }}


def resources() -> dict[str, Any]:
    """Schedules, their role, the alarm topic (conditional) and the operations functions' alarms."""
    built: dict[str, Any] = {SCHEDULER_ROLE: _scheduler_role()}
    for kind in STATE_MACHINES:
        built[f"{kind.capitalize()}ExecutionSchedule"] = _schedule(
            f"{kind}-ingest", f"Starts one {kind} ingestion execution per slot, named after the slot",
            LOGICAL_IDS[START_EXECUTION], {"workflow": kind, "scheduled_time": SCHEDULED_TIME},
            "ScheduleRateMinutes")
    built["SubmitSchedule"] = _schedule(
        "embedding-submit", "Submits un-embedded lines and words as OpenAI batches", LOGICAL_IDS[SUBMIT],
        {"kinds": ["line", "word"], "scheduled_time": SCHEDULED_TIME}, "SubmitRateMinutes")
    built[ALARM_TOPIC] = {"Type": "AWS::SNS::Topic", "Condition": "CreateAlarmTopic", "Properties": {
        "TopicName": {"Fn::Sub": "embedding-ingest-${Stage}-alarms"},
        "DisplayName": "embedding-ingest alarms"}}
    built["AlarmEmailSubscription"] = {"Type": "AWS::SNS::Subscription", "Condition": "SubscribeAlarmEmail",
                                       "Properties": {"TopicArn": {"Ref": ALARM_TOPIC}, "Protocol": "email",
                                                      "Endpoint": {"Ref": "AlarmEmail"}}}
    by_name = {f.name: f for f in OPERATIONS_FUNCTIONS}
    built["SubmitFunctionErrorsAlarm"] = _errors_alarm(by_name[SUBMIT], (
        "Submitting new items failed: read the function's log group /aws/lambda/embedding-submit-<Stage>; "
        "see what is waiting with `embedding-ingest batches list` (with the stack's CHROMADB_BUCKET and "
        "DYNAMODB_TABLE_NAME set)"))
    built["StartExecutionFunctionErrorsAlarm"] = _errors_alarm(by_name[START_EXECUTION], (
        "A scheduled execution could not be started: read /aws/lambda/embedding-start-execution-<Stage>; "
        "start one by hand with `embedding-ingest start-execution line --backend aws`"))
    return built
