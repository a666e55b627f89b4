"""Checks a definition against the subset the engine interprets and builds its states.

Anything outside the subset is refused up front with an error naming the state and the construct,
so a definition never half-runs on semantics the engine would get wrong."""

from __future__ import annotations

from typing import Any, NoReturn

from embedding_ingest.workflow.engine.choice import OPERATORS, RULE_KEYS, ChoiceState, rule_operator
from embedding_ingest.workflow.engine.core import Program, State
from embedding_ingest.workflow.engine.error_handling import CATCHER_FIELDS, RETRIER_FIELDS
from embedding_ingest.workflow.engine.map_state import MapState
from embedding_ingest.workflow.engine.simple_states import FailState, PassState, SucceedState
from embedding_ingest.workflow.engine.task import TaskState
from embedding_ingest.workflow.exceptions import STATES_ALL, UnsupportedDefinitionError
from embedding_ingest.workflow.intrinsics import IntrinsicSyntaxError, parse_intrinsic
from embedding_ingest.workflow.paths import PathSyntaxError, check_path_syntax, reference_segments

STATE_TYPES: dict[str, type[State]] = {
    cls.type_name: cls for cls in (TaskState, PassState, ChoiceState, MapState, SucceedState, FailState)}
TOP_LEVEL_FIELDS = frozenset({"StartAt", "States", "Comment", "Version", "QueryLanguage"})
PROCESSOR_FIELDS = frozenset({"StartAt", "States", "Comment", "ProcessorConfig"})


def _refuse(where: str, problem: str) -> NoReturn:
    raise UnsupportedDefinitionError(where, problem)


def compile_definition(definition: Any) -> Program:
    if not isinstance(definition, dict):
        _refuse("definition", "must be a JSON object")
    if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
        _refuse("definition",
                f"QueryLanguage {definition['QueryLanguage']!r} is not supported (JSONPath only)")
    return _program(definition, "definition", TOP_LEVEL_FIELDS)


def _program(spec: Any, where: str, allowed: frozenset[str]) -> Program:
    if not isinstance(spec, dict):
        _refuse(where, "must be a JSON object with StartAt and States")
    _no_unknown_fields(spec, allowed, where)
    states = spec.get("States")
    if not isinstance(states, dict) or not states:
        _refuse(where, "States must be a non-empty object")
    if spec.get("StartAt") not in states:
        _refuse(where, f"StartAt {spec.get('StartAt')!r} is not one of its States")
    built = {name: _state(name, state_spec, where) for name, state_spec in states.items()}
    for name, state in built.items():
        for target in _transitions(state):
            if target not in states:
                _refuse(_at(where, name), f"transition to unknown state {target!r}")
    return Program(spec["StartAt"], built)


def _at(where: str, name: str) -> str:
    return f"state '{name}'" if where == "definition" else f"{where} > state '{name}'"


def _no_unknown_fields(spec: dict[str, Any], allowed: frozenset[str], where: str, what: str = "") -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        _refuse(where, f"{what}field(s) {', '.join(unknown)} not supported by the local engine")


def _transitions(state: State) -> list[str]:
    spec = state.spec
    targets = [spec["Next"]] if "Next" in spec else []
    targets += [catcher["Next"] for catcher in spec.get("Catch", [])]
    if isinstance(state, ChoiceState):
        targets += [rule["Next"] for rule in spec["Choices"]]
        targets += [spec["Default"]] if "Default" in spec else []
    return targets


def _state(name: str, spec: Any, where: str) -> State:
    at = _at(where, name)
    if not isinstance(spec, dict):
        _refuse(at, "must be a JSON object")
    cls = STATE_TYPES.get(spec.get("Type"))
    if cls is None:
        _refuse(at, f"state type {spec.get('Type')!r} is not supported by the local engine "
                    f"(supported: {', '.join(sorted(STATE_TYPES))})")
    _no_unknown_fields(spec, cls.fields, at, f"{cls.type_name} ")
    if cls.has_transition and not cls.terminal and ("Next" in spec) == (spec.get("End") is True):
        _refuse(at, "needs exactly one of Next or End: true")
    for key in ("InputPath", "OutputPath", "ItemsPath"):
        if spec.get(key) is not None:
            _check_path(spec[key], at, key)
    if spec.get("ResultPath") is not None:
        _check_result_path(spec["ResultPath"], at, "ResultPath")
    for key in ("Parameters", "ResultSelector", "ItemSelector"):
        if key in spec:
            _check_template(spec[key], at, key)
    _check_error_handling(spec, at)
    if cls is TaskState:
        _check_task(spec, at)
    elif cls is ChoiceState:
        _check_choice(spec, at)
    elif cls is FailState:
        _check_fail(spec, at)
    elif cls is MapState:
        return MapState(name, spec, _map_processor(spec, at))
    return cls(name, spec)


def _check_path(path: Any, at: str, key: str) -> None:
    if not isinstance(path, str):
        _refuse(at, f"{key} must be a string path")
    try:
        check_path_syntax(path[1:] if path.startswith("$$") else path)
    except PathSyntaxError as exc:
        _refuse(at, f"{key}: {exc}")


def _check_result_path(path: Any, at: str, key: str) -> None:
    _check_path(path, at, key)
    segments = reference_segments(path)
    if path.startswith("$$") or segments is None or any(isinstance(s, int) for s in segments):
        _refuse(at, f"{key} {path!r} must be a reference path into objects (e.g. $.a.b)")


def _check_template(template: Any, at: str, key: str) -> None:
    if isinstance(template, list):
        for value in template:
            _check_template(value, at, key)
    if not isinstance(template, dict):
        return
    for name, value in template.items():
        if not name.endswith(".$"):
            _check_template(value, at, f"{key}.{name}")
            continue
        if not isinstance(value, str):
            _refuse(at, f"{key}.{name} must be a path or intrinsic function string")
        if value.startswith("States."):
            try:
                parse_intrinsic(value)
            except (IntrinsicSyntaxError, PathSyntaxError) as exc:
                _refuse(at, f"{key}.{name}: {exc}")
        else:
            _check_path(value, at, f"{key}.{name}")


def _check_error_names(names: Any, at: str, what: str) -> None:
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        _refuse(at, f"{what}.ErrorEquals must be a non-empty list of error names")
    if STATES_ALL in names and names != [STATES_ALL]:
        _refuse(at, f"{what}: States.ALL must appear alone in ErrorEquals")


def _check_error_handling(spec: dict[str, Any], at: str) -> None:
    for kind, fields in (("Retry", RETRIER_FIELDS), ("Catch", CATCHER_FIELDS)):
        entries = spec.get(kind, [])
        if not isinstance(entries, list):
            _refuse(at, f"{kind} must be a list")
        for index, entry in enumerate(entries):
            what = f"{kind}[{index}]"
            if not isinstance(entry, dict):
                _refuse(at, f"{what} must be an object")
            _no_unknown_fields(entry, fields, at, f"{what} ")
            _check_error_names(entry.get("ErrorEquals"), at, what)
            if STATES_ALL in entry["ErrorEquals"] and index != len(entries) - 1:
                _refuse(at, f"{what}: a States.ALL {kind} entry must be the last one")
            if kind == "Catch":
                if not isinstance(entry.get("Next"), str):
                    _refuse(at, f"{what} needs a Next state")
                if entry.get("ResultPath") is not None:
                    _check_result_path(entry["ResultPath"], at, f"{what}.ResultPath")
            elif entry.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
                _refuse(at, f"{what}.JitterStrategy must be FULL or NONE")


def _check_task(spec: dict[str, Any], at: str) -> None:
    resource = spec.get("Resource")
    if not isinstance(resource, str) or not resource:
        _refuse(at, "Task needs a Resource")
    if resource.startswith("arn:aws:states:::"):
        _refuse(at, f"service integration {resource!r} is not supported; use a function ARN as Resource")


def _check_choice(spec: dict[str, Any], at: str) -> None:
    choices = spec.get("Choices")
    if not isinstance(choices, list) or not choices:
        _refuse(at, "Choice needs a non-empty Choices list")
    for index, rule in enumerate(choices):
        if not isinstance(rule.get("Next"), str):
            _refuse(at, f"Choices[{index}] needs a Next state")
        _check_rule(rule, at, f"Choices[{index}]")


def _check_rule(rule: Any, at: str, what: str) -> None:
    if not isinstance(rule, dict):
        _refuse(at, f"{what} must be an object")
    for combinator in ("And", "Or"):
        if combinator in rule:
            if not isinstance(rule[combinator], list) or not rule[combinator]:
                _refuse(at, f"{what}.{combinator} must be a non-empty list of rules")
            for index, inner in enumerate(rule[combinator]):
                _check_rule(inner, at, f"{what}.{combinator}[{index}]")
            return
    if "Not" in rule:
        _check_rule(rule["Not"], at, f"{what}.Not")
        return
    op = rule_operator(rule)
    if op is None or op not in OPERATORS:
        found = sorted(set(rule) - RULE_KEYS)
        _refuse(at, f"{what}: comparison {', '.join(found) or '(none)'} is not supported by the local "
                    f"engine (supported: {', '.join(sorted(OPERATORS))})")
    _check_path(rule.get("Variable"), at, f"{what}.Variable")
    if op.endswith("Path"):
        _check_path(rule[op], at, f"{what}.{op}")


def _check_fail(spec: dict[str, Any], at: str) -> None:
    for key in ("Error", "Cause"):
        if key in spec and f"{key}Path" in spec:
            _refuse(at, f"use either {key} or {key}Path, not both")
        path = spec.get(f"{key}Path")
        if isinstance(path, str) and not path.startswith("States."):
            _check_path(path, at, f"{key}Path")


def _map_processor(spec: dict[str, Any], at: str) -> Program:
    if ("ItemProcessor" in spec) == ("Iterator" in spec):
        _refuse(at, "Map needs exactly one of ItemProcessor or Iterator")
    if "ItemSelector" in spec and "Parameters" in spec:
        _refuse(at, "Map takes ItemSelector or Parameters, not both")
    concurrency = spec.get("MaxConcurrency", 0)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 0:
        _refuse(at, "MaxConcurrency must be a non-negative integer")
    processor = spec.get("ItemProcessor", spec.get("Iterator"))
    config = processor.get("ProcessorConfig", {}) if isinstance(processor, dict) else {}
    if config.get("Mode", "INLINE") != "INLINE" or set(config) - {"Mode"}:
        _refuse(at, f"ProcessorConfig {config} is not supported (inline Map only)")
    return _program(processor, f"{at} > ItemProcessor", PROCESSOR_FIELDS)
