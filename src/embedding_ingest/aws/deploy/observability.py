"""What lets someone see the stack run: log groups, the state machines' execution logs and X-Ray traces,
the functions' traces and metrics, and the alarms on them.

- Log groups: one per function (/aws/lambda/<name>-<Stage>) and one per state machine under
  /aws/vendedlogs/states/ (the prefix AWS suggests for vended logs, which keeps the account's CloudWatch
  Logs resource policy short). Retention is LogRetentionDays, one year by default: Control Tower's
  CT.CLOUDWATCH.PR.2 asks for at least that, and at level ERROR the logs stay small.
- State machines log at level ERROR (ALL while investigating, by hand: README) without execution
  data (inputs and outputs: item texts); their role gets the log-delivery actions (Step Functions
  developer guide, "Logging to CloudWatch Logs") and the X-Ray ones ("X-Ray and
  Step Functions"). These actions take no resource narrower than "*".
- Functions trace actively (TracingConfig) and write metrics as embedded-metric log lines (Powertools,
  aws/functions/observability.py): namespace EmbeddingIngest, dimension service, no API call.
"""

from __future__ import annotations

from typing import Any

from embedding_ingest.aws.function_table import LambdaFunction
from embedding_ingest.metrics import NAMESPACE, POLL_FAILURES, SERVICE
from embedding_ingest.pipeline.state_names import WorkflowKind

# A literal, not a parameter: Control Tower's CT.STEPFUNCTIONS.PR.1 accepts only ERROR or ALL as written.
# To see every transition while investigating: `aws stepfunctions update-state-machine` with a
# --logging-configuration of level ALL (README), until the next deploy puts ERROR back.
STATE_MACHINE_LOG_LEVEL = "ERROR"
DEFAULT_LOG_RETENTION_DAYS = 365
# The values CloudWatch Logs accepts for RetentionInDays (PutRetentionPolicy).
LOG_RETENTION_CHOICES = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                         2557, 2922, 3288, 3653)
XRAY_ACTIONS = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                "xray:GetSamplingTargets"]
LOG_DELIVERY_ACTIONS = ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                        "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                        "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"]


def parameters() -> dict[str, Any]:
    return {
        "LogRetentionDays": {"Type": "Number", "Default": DEFAULT_LOG_RETENTION_DAYS,
                             "AllowedValues": list(LOG_RETENTION_CHOICES),
                             "Description": "Days every log group of the stack keeps its logs"},
    }


def _log_group(name: Any) -> dict[str, Any]:
    return {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
            "Properties": {"LogGroupName": name, "RetentionInDays": {"Ref": "LogRetentionDays"}}}


def function_log_group(function: LambdaFunction) -> dict[str, Any]:
    return _log_group({"Fn::Sub": f"/aws/lambda/{function.name}-${{Stage}}"})


def state_machine_log_group(kind: WorkflowKind) -> dict[str, Any]:
    return _log_group({"Fn::Sub": f"/aws/vendedlogs/states/{kind}-ingest-${{Stage}}"})


def state_machine_properties(log_group_id: str) -> dict[str, Any]:
    destination = {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": [log_group_id, "Arn"]}}}
    return {
        "LoggingConfiguration": {"Level": STATE_MACHINE_LOG_LEVEL, "IncludeExecutionData": False,
                                 "Destinations": [destination]},
        "TracingConfiguration": {"Enabled": True},
    }


def state_machine_statements() -> list[dict[str, Any]]:
    return [{"Sid": "DeliverExecutionLogs", "Effect": "Allow", "Action": LOG_DELIVERY_ACTIONS,
             "Resource": "*"},
            {"Sid": "WriteTraces", "Effect": "Allow", "Action": XRAY_ACTIONS, "Resource": "*"}]


def function_statements() -> list[dict[str, Any]]:
    """X-Ray's write actions admit no resource but "*" (Service Authorization Reference, AWS X-Ray)."""
    return [{"Sid": "WriteTraces", "Effect": "Allow", "Action": XRAY_ACTIONS[:2], "Resource": "*"}]


def function_environment() -> dict[str, str]:
    return {"POWERTOOLS_SERVICE_NAME": SERVICE, "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE}


def function_properties() -> dict[str, Any]:
    return {"TracingConfig": {"Mode": "Active"}}


def poll_failures_alarm(actions: Any) -> dict[str, Any]:
    """Batches a run could not poll after every retry: the state machine records each and carries on
    with the others (a Pass state), and SplitChunks counts them into this metric."""
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmName": {"Fn::Sub": "embedding-ingest-${Stage}-poll-failures"},
        "AlarmDescription": "A batch could not be polled after every retry (the run went on without it; it "
                            "stays active and the next run polls it again). See which with `embedding-ingest "
                            "list-executions --backend aws --workflow line`, then `embedding-ingest "
                            "get-execution-history NAME --backend aws --failed-only` (or the word workflow)",
        "Namespace": NAMESPACE, "MetricName": POLL_FAILURES,
        "Dimensions": [{"Name": "service", "Value": SERVICE}],
        "Statistic": "Sum", "Period": 900, "EvaluationPeriods": 1, "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
        "AlarmActions": actions, "OKActions": actions,
    }}
