"""Which AWS calls did each Lambda make, and would its role in the template allow them?

`CallRecorder` hooks botocore's `before-parameter-build` event on the default boto3 session, so every
client built afterwards (the Lambda contexts' S3, DynamoDB and Secrets Manager clients) reports each
call with its real parameters. Each call becomes the IAM (action, resource ARN) pairs AWS would
authorize, and `allowed` evaluates the role's policy statements from the template (Allow statements,
IAM wildcards) after resolving the template's Ref / Fn::GetAtt / Fn::Sub against the test's resources.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"

_S3_ACTIONS = {"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
               "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
               "CompleteMultipartUpload": "s3:PutObject", "AbortMultipartUpload": "s3:AbortMultipartUpload",
               "DeleteObject": "s3:DeleteObject"}
_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem"}


@dataclass(frozen=True)
class Permission:
    function: str | None
    action: str
    resource: str


class CallRecorder:
    """Attributes calls to `current` (set by the test's invoker around each invocation; the engine
    runs one invocation at a time, so calls from a step's helper threads are attributed too)."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.invoked: set[str] = set()
        self.recording = False
        self.permissions: list[Permission] = []
        self._lock = threading.Lock()

    def attach(self, session: Any) -> None:
        session.events.register("before-parameter-build", self._on_call)

    def _on_call(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if not self.recording:
            return
        service = model.service_model.endpoint_prefix
        found = [Permission(self.current, action, resource)
                 for action, resource in permissions_for(service, model.name, params)]
        with self._lock:
            self.permissions.extend(found)

    def of(self, function: str) -> list[Permission]:
        return [p for p in self.permissions if p.function == function]


def permissions_for(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    if service == "s3":
        bucket = params.get("Bucket", "")
        if operation in ("ListObjectsV2", "ListObjects"):
            return [("s3:ListBucket", f"arn:aws:s3:::{bucket}")]
        if operation == "DeleteObjects":
            return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{o['Key']}")
                    for o in params["Delete"]["Objects"]]
        action = _S3_ACTIONS.get(operation, f"s3:{operation}")
        return [(action, f"arn:aws:s3:::{bucket}/{params.get('Key', '')}")]
    if service == "dynamodb":
        return _dynamodb(operation, params)
    if service == "secretsmanager":
        return [(f"secretsmanager:{operation}", params.get("SecretId", ""))]
    if service == "ssm":
        return [(f"ssm:{operation}", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{params.get('Name', '')}")]
    return [(f"{service}:{operation}", "*")]


def table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def _dynamodb(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    if operation == "TransactWriteItems":
        found = []
        for entry in params["TransactItems"]:
            (kind, body), = entry.items()
            found.append((f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table_arn(body["TableName"])))
        return found
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{operation}", table_arn(name)) for name in params["RequestItems"]]
    arn = table_arn(params["TableName"])
    if params.get("IndexName"):
        arn = f"{arn}/index/{params['IndexName']}"
    return [(f"dynamodb:{operation}", arn)]


_NO_VALUE = object()  # AWS::NoValue: the property or list entry is left out


class TemplateResolver:
    """Ref / Fn::GetAtt / Fn::Sub of the template, with the test's physical names."""

    def __init__(self, refs: dict[str, str], attributes: dict[str, str],
                 conditions: dict[str, bool] | None = None) -> None:
        self.refs = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, **refs}
        self.attributes = attributes  # "Logical.Attr" -> value
        self.conditions = conditions or {}  # a condition not given is false (e.g. HasEfs: no EFS)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [r for r in (self.resolve(n) for n in node) if r is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if node.get("Ref") == "AWS::NoValue":
            return _NO_VALUE
        if "Fn::If" in node:
            condition, when_true, when_false = node["Fn::If"]
            return self.resolve(when_true if self.conditions.get(condition) else when_false)
        if "Ref" in node:
            return self.refs[node["Ref"]]
        if "Fn::GetAtt" in node:
            logical, attribute = node["Fn::GetAtt"]
            return self.attributes[f"{logical}.{attribute}"]
        if "Fn::Sub" in node:
            return re.sub(r"\$\{([^}!]+)\}", lambda m: self._sub(m.group(1)), node["Fn::Sub"])
        return {key: self.resolve(value) for key, value in node.items()}

    def _sub(self, name: str) -> str:
        return self.attributes[name] if "." in name else self.refs[name]


def allowed(statements: list[dict[str, Any]], permission: Permission) -> bool:
    for statement in statements:
        if statement["Effect"] != "Allow" or statement.get("Condition"):
            continue
        actions = _as_list(statement["Action"])
        resources = _as_list(statement["Resource"])
        if (any(fnmatch.fnmatchcase(permission.action.lower(), a.lower()) for a in actions)
                and any(fnmatch.fnmatchcase(permission.resource, r) for r in resources)):
            return True
    return False


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
