"""Field-level checks of a state, made when the definition is loaded - the checks AWS makes at
CreateStateMachine (it answers InvalidDefinition), so a definition AWS would reject never runs here.

Sources: the States Language spec (https://states-language.net/spec.html: Reference Paths, Choice
Rules, Retriers) and the AWS developer guide pages cited beside each rule. `invalid` raises
InvalidDefinitionError (AWS rejects it too); `refuse` raises UnsupportedDefinitionError (AWS accepts it,
the local engine does not run it).
"""

from __future__ import annotations

from typing import Any, NoReturn

from asl_local.engine.choice import OPERATORS, PATH_COMPARISONS, RULE_KEYS, rule_operator
from asl_local.engine.error_handling import CATCHER_FIELDS, RETRIER_FIELDS
from asl_local.engine.lambda_invoke import LAMBDA_INVOKE, integration_of, split_function_name
from asl_local.errors import (
    STATES_ALL,
    InvalidDefinitionError,
    UnsupportedDefinitionError,
)
from asl_local.intrinsics.functions import is_integer, is_number
from asl_local.intrinsics.parser import IntrinsicSyntaxError, parse_intrinsic
from asl_local.paths import PathSyntaxError, check_path_syntax, reference_segments
from asl_local.timestamps import is_timestamp

MAX_SECONDS = 99_999_999  # AWS's upper bound for Seconds, IntervalSeconds, TimeoutSeconds, MaxAttempts


def refuse(where: str, problem: str) -> NoReturn:
    raise UnsupportedDefinitionError(where, problem)


def invalid(where: str, problem: str, code: str = "SCHEMA_VALIDATION_FAILED") -> NoReturn:
    raise InvalidDefinitionError(where, problem, code)


def no_unknown_fields(spec: dict[str, Any], allowed: frozenset[str], where: str, what: str = "") -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        refuse(where, f"{what}field(s) {', '.join(unknown)} not supported by the local engine")


def check_path(path: Any, at: str, key: str) -> None:
    """A Path: any JSONPath AWS accepts (wildcards and filters included), on the input or on $$."""
    if not isinstance(path, str):
        invalid(at, f"{key} must be a string path")
    try:
        check_path_syntax(path[1:] if path.startswith("$$") else path)
    except PathSyntaxError as exc:
        invalid(at, f"{key}: {exc}", "INVALID_JSON_PATH")


def check_reference_path(path: Any, at: str, key: str, *, context_allowed: bool = True) -> None:
    """A Reference Path: selects exactly one node (no wildcards, filters, slices or unions)."""
    check_path(path, at, key)
    own = path[1:] if path.startswith("$$") else path
    if (path.startswith("$$") and not context_allowed) or reference_segments(own) is None:
        invalid(at, f"{key} {path!r} must be a reference path (one node: $.a.b or $.list[0])",
                "INVALID_REFERENCE_PATH")


def check_result_path(path: Any, at: str, key: str) -> None:
    check_reference_path(path, at, key, context_allowed=False)
    if any(isinstance(s, int) for s in reference_segments(path) or ()):
        refuse(at, f"{key} {path!r}: a ResultPath into an array index is not supported by the local engine")


def check_template(template: Any, at: str, key: str) -> None:
    if isinstance(template, list):
        for value in template:
            check_template(value, at, key)
    if not isinstance(template, dict):
        return
    for name, value in template.items():
        if not name.endswith(".$"):
            check_template(value, at, f"{key}.{name}")
            continue
        if not isinstance(value, str):
            invalid(at, f"{key}.{name} must be a path or intrinsic function string")
        if value.startswith("States."):
            check_intrinsic(value, at, f"{key}.{name}")
        else:
            check_path(value, at, f"{key}.{name}")


def check_intrinsic(text: str, at: str, key: str) -> None:
    try:
        parse_intrinsic(text)
    except (IntrinsicSyntaxError, PathSyntaxError) as exc:
        invalid(at, f"{key}: {exc}", "INVALID_INTRINSIC_FUNCTION")


def check_whole_number(spec: dict[str, Any], key: str, at: str, *, minimum: int,
                       maximum: int = MAX_SECONDS) -> None:
    if key in spec and (not is_integer(spec[key]) or not minimum <= spec[key] <= maximum):
        invalid(at, f"{key} must be an integer from {minimum} to {maximum}, not {spec[key]!r}")


def check_one_of(spec: dict[str, Any], keys: tuple[str, ...], at: str, *, required: bool) -> None:
    present = [key for key in keys if key in spec]
    if len(present) > 1 or (required and not present):
        invalid(at, f"needs exactly one of {', '.join(keys)}" if required else
                f"takes at most one of {', '.join(keys)}")


def check_error_handling(spec: dict[str, Any], at: str) -> None:
    for kind, fields in (("Retry", RETRIER_FIELDS), ("Catch", CATCHER_FIELDS)):
        entries = spec.get(kind, [])
        if not isinstance(entries, list):
            invalid(at, f"{kind} must be a list")
        for index, entry in enumerate(entries):
            what = f"{kind}[{index}]"
            if not isinstance(entry, dict):
                invalid(at, f"{what} must be an object")
            no_unknown_fields(entry, fields, at, f"{what} ")
            names = entry.get("ErrorEquals")
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                invalid(at, f"{what}.ErrorEquals must be a non-empty list of error names")
            if STATES_ALL in names and names != [STATES_ALL]:
                invalid(at, f"{what}: States.ALL must appear alone in ErrorEquals")
            if STATES_ALL in names and index != len(entries) - 1:
                invalid(at, f"{what}: a States.ALL {kind} entry must be the last one")
            if kind == "Catch":
                if not isinstance(entry.get("Next"), str):
                    invalid(at, f"{what} needs a Next state")
                if entry.get("ResultPath") is not None:
                    check_result_path(entry["ResultPath"], at, f"{what}.ResultPath")
            else:
                check_retrier(entry, at, what)


def check_retrier(retrier: dict[str, Any], at: str, what: str) -> None:
    # AWS (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html):
    # IntervalSeconds a positive integer, MaxAttempts 0 or more, BackoffRate at least 1.0,
    # MaxDelaySeconds a positive integer, JitterStrategy FULL or NONE.
    check_whole_number(retrier, "IntervalSeconds", at, minimum=1)
    check_whole_number(retrier, "MaxAttempts", at, minimum=0)
    check_whole_number(retrier, "MaxDelaySeconds", at, minimum=1, maximum=31_622_400)
    rate = retrier.get("BackoffRate", 2.0)
    if not is_number(rate) or rate < 1.0:
        invalid(at, f"{what}.BackoffRate must be a number of at least 1.0, not {rate!r}")
    if retrier.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
        invalid(at, f"{what}.JitterStrategy must be FULL or NONE")


def check_task(spec: dict[str, Any], at: str) -> None:
    resource = spec.get("Resource")
    if not isinstance(resource, str) or not resource:
        invalid(at, "Task needs a Resource")
    integration = integration_of(resource)
    if integration is not None:
        check_integration(resource, integration, spec.get("Parameters"), at)
    elif ":activity:" in resource:
        refuse(at, f"activity {resource!r} is not supported by the local engine (no activity worker can "
                   "poll it here); use arn:aws:states:::lambda:invoke or a Lambda function ARN")
    for key in ("TimeoutSeconds", "HeartbeatSeconds"):
        check_one_of(spec, (key, f"{key}Path"), at, required=False)
        check_whole_number(spec, key, at, minimum=1)
        if f"{key}Path" in spec:
            check_reference_path(spec[f"{key}Path"], at, f"{key}Path")
    if "HeartbeatSeconds" in spec and spec["HeartbeatSeconds"] >= spec.get("TimeoutSeconds", MAX_SECONDS):
        invalid(at, "HeartbeatSeconds must be smaller than TimeoutSeconds")


# Invoke's request fields the optimized integration passes on (https://docs.aws.amazon.com/step-functions/
# latest/dg/connect-lambda.html; Lambda API reference, Invoke).
LAMBDA_INVOKE_FIELDS = frozenset({"FunctionName", "Payload", "Qualifier", "ClientContext", "InvocationType",
                                  "LogType"})


def check_integration(resource: str, integration: tuple[str, str], parameters: Any, at: str) -> None:
    """A service integration: only request-response lambda:invoke runs here. What AWS rejects at
    CreateStateMachine is invalid (Lambda has no .sync form; lambda: has no other action), what it
    accepts but the engine cannot do (callbacks, other services) is refused, naming the resource."""
    action, pattern = integration
    if action.startswith("lambda:") and (action != LAMBDA_INVOKE or pattern.startswith(".sync")):
        # AWS's words (InvalidDefinition at CreateStateMachine).
        invalid(at, f"The resource provided {resource} is not recognized. The value is not a valid "
                    "resource ARN, or the resource is not available in this region.")
    if pattern == ".waitForTaskToken":
        refuse(at, f"{resource!r}: the callback pattern (.waitForTaskToken) is not supported by the local "
                   "engine: nothing here can call SendTaskSuccess with the task token")
    if action != LAMBDA_INVOKE:
        refuse(at, f"service integration {resource!r} is not supported by the local engine; it runs "
                   "arn:aws:states:::lambda:invoke and Lambda function ARNs")
    if not isinstance(parameters, dict):
        invalid(at, "The field 'FunctionName' is required but was missing (lambda:invoke needs "
                    "Parameters with FunctionName)")
    fields = {key.removesuffix(".$") for key in parameters}
    unknown = sorted(fields - LAMBDA_INVOKE_FIELDS)
    if unknown:
        invalid(at, f"The field '{unknown[0]}' is not supported by Step Functions (lambda:invoke takes "
                    f"{', '.join(sorted(LAMBDA_INVOKE_FIELDS))})")
    if "FunctionName" not in fields:
        invalid(at, "The field 'FunctionName' is required but was missing")
    if len(fields) != len(parameters):
        invalid(at, "a field is given both as a value and as a path (.$)")
    name = parameters.get("FunctionName")
    if isinstance(name, str) and split_function_name(name) is None:
        invalid(at, f"FunctionName {name!r} is not a function name, name:qualifier or function ARN")
    if "InvocationType.$" in parameters or parameters.get("InvocationType", "RequestResponse") != \
            "RequestResponse":
        refuse(at, "lambda:invoke with an InvocationType other than RequestResponse (Event, DryRun) is "
                   "not supported by the local engine")
    if "LogType.$" in parameters or parameters.get("LogType", "None") != "None":
        refuse(at, "lambda:invoke with LogType Tail is not supported by the local engine (no log tail "
                   "is returned); read the function's logs instead")
    if "ClientContext" in fields:
        refuse(at, "lambda:invoke with ClientContext is not supported by the local engine (functions "
                   "get no client context)")


def check_wait(spec: dict[str, Any], at: str) -> None:
    check_one_of(spec, ("Seconds", "Timestamp", "SecondsPath", "TimestampPath"), at, required=True)
    check_whole_number(spec, "Seconds", at, minimum=0)
    if "Timestamp" in spec and not is_timestamp(spec["Timestamp"]):
        invalid(at, f"Timestamp {spec['Timestamp']!r} is not an RFC 3339 timestamp such as "
                    "2026-01-01T00:00:00Z")
    for key in ("SecondsPath", "TimestampPath"):
        if key in spec:
            check_reference_path(spec[key], at, key)


# AWS: ErrorPath/CausePath may be an intrinsic that returns a string: only these
# (https://docs.aws.amazon.com/step-functions/latest/dg/state-fail.html).
FAIL_PATH_INTRINSICS = ("States.Format", "States.JsonToString", "States.ArrayGetItem", "States.Base64Encode",
                        "States.Base64Decode", "States.Hash", "States.UUID")


def check_fail(spec: dict[str, Any], at: str) -> None:
    for key in ("Error", "Cause"):
        check_one_of(spec, (key, f"{key}Path"), at, required=False)
        path = spec.get(f"{key}Path")
        if isinstance(path, str) and path.startswith("States."):
            check_intrinsic(path, at, f"{key}Path")
            if parse_intrinsic(path).name not in FAIL_PATH_INTRINSICS:
                invalid(at, f"{key}Path may use only {', '.join(FAIL_PATH_INTRINSICS)}")
        elif path is not None:
            check_reference_path(path, at, f"{key}Path")


def check_map_settings(spec: dict[str, Any], at: str) -> None:
    check_one_of(spec, ("MaxConcurrency", "MaxConcurrencyPath"), at, required=False)
    check_whole_number(spec, "MaxConcurrency", at, minimum=0, maximum=2**31 - 1)
    check_whole_number(spec, "ToleratedFailureCount", at, minimum=0, maximum=2**31 - 1)
    percentage = spec.get("ToleratedFailurePercentage", 0)
    if not is_number(percentage) or not 0 <= percentage <= 100:
        invalid(at, f"ToleratedFailurePercentage must be a number from 0 to 100, not {percentage!r}")
    for key in ("MaxConcurrency", "ToleratedFailureCount", "ToleratedFailurePercentage"):
        check_one_of(spec, (key, f"{key}Path"), at, required=False)
        if f"{key}Path" in spec:
            check_reference_path(spec[f"{key}Path"], at, f"{key}Path")
    label = spec.get("Label", "")
    # AWS: up to 40 characters, none of whitespace, brackets, wildcards or special characters.
    if not isinstance(label, str) or len(label) > 40 or any(
            c.isspace() or c in "<>{}[]?*\"#%\\^|~`$&,;:/" for c in label):
        invalid(at, f"Label {label!r} must be at most 40 characters without spaces or special characters")


def check_choice(spec: dict[str, Any], at: str) -> None:
    choices = spec.get("Choices")
    if not isinstance(choices, list) or not choices:
        invalid(at, "Choice needs a non-empty Choices list")
    for index, rule in enumerate(choices):
        if not isinstance(rule, dict) or not isinstance(rule.get("Next"), str):
            invalid(at, f"Choices[{index}] needs a Next state")
        check_rule(rule, at, f"Choices[{index}]")


# The operand each comparison takes (https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html)
_OPERAND_KINDS = (("String", "a string", lambda v: isinstance(v, str)),
                  ("Numeric", "a number", is_number),
                  ("Boolean", "a boolean", lambda v: isinstance(v, bool)),
                  ("Timestamp", "an RFC 3339 timestamp string", is_timestamp),
                  ("Is", "a boolean", lambda v: isinstance(v, bool)))


def check_rule(rule: Any, at: str, what: str) -> None:
    if not isinstance(rule, dict):
        invalid(at, f"{what} must be an object")
    for combinator in ("And", "Or"):
        if combinator in rule:
            if not isinstance(rule[combinator], list) or not rule[combinator]:
                invalid(at, f"{what}.{combinator} must be a non-empty list of rules")
            for index, inner in enumerate(rule[combinator]):
                check_rule(inner, at, f"{what}.{combinator}[{index}]")
            return
    if "Not" in rule:
        check_rule(rule["Not"], at, f"{what}.Not")
        return
    op = rule_operator(rule)
    if op is None or op not in OPERATORS:
        found = sorted(set(rule) - RULE_KEYS)
        invalid(at, f"{what}: {', '.join(found) or 'no comparison'} is not a Choice comparison "
                    f"(one of {', '.join(sorted(OPERATORS))})")
    check_path(rule.get("Variable"), at, f"{what}.Variable")
    operand = rule[op]
    if op in PATH_COMPARISONS:
        check_reference_path(operand, at, f"{what}.{op}")
        return
    for prefix, kind, accepts in _OPERAND_KINDS:
        if op.startswith(prefix) and not accepts(operand):
            invalid(at, f"{what}.{op} must be {kind}, not {operand!r}")
