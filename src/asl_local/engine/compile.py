"""Checks a definition and builds its states: the structure here (programs, transitions, nested
Map/Parallel processors), each state's fields in validate.py.

Anything AWS would reject is refused with InvalidDefinitionError; anything AWS accepts but the engine
does not run (JSONata, Distributed Map, service integrations, activities) with UnsupportedDefinitionError,
naming the state and the construct, so a definition never half-runs on semantics the engine would get
wrong."""

from __future__ import annotations

from typing import Any

from asl_local.engine import validate as check
from asl_local.engine.choice import ChoiceState
from asl_local.engine.core import Program, State
from asl_local.engine.map_state import MapState
from asl_local.engine.parallel_state import ParallelState
from asl_local.engine.simple_states import FailState, PassState, SucceedState
from asl_local.engine.task import TaskState
from asl_local.engine.wait_state import WaitState

STATE_TYPES: dict[str, type[State]] = {
    cls.type_name: cls
    for cls in (TaskState, PassState, ChoiceState, MapState, ParallelState, WaitState, SucceedState,
                FailState)}
TOP_LEVEL_FIELDS = frozenset({"StartAt", "States", "Comment", "Version", "QueryLanguage", "TimeoutSeconds"})
PROCESSOR_FIELDS = frozenset({"StartAt", "States", "Comment", "ProcessorConfig"})
BRANCH_FIELDS = frozenset({"StartAt", "States", "Comment"})
DISTRIBUTED_MAP_FIELDS = ("ItemReader", "ItemBatcher", "ResultWriter")


def compile_definition(definition: Any) -> Program:
    """The runnable program of a definition (a parsed JSON object).

    Raises InvalidDefinitionError where AWS's CreateStateMachine would answer InvalidDefinition, and
    UnsupportedDefinitionError for what AWS runs but this engine does not."""
    if not isinstance(definition, dict):
        check.invalid("definition", "must be a JSON object")
    if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
        check.refuse("definition",
                     f"QueryLanguage {definition['QueryLanguage']!r} is not supported (JSONPath only)")
    check.check_whole_number(definition, "TimeoutSeconds", "definition", minimum=1)
    return _program(definition, "definition", TOP_LEVEL_FIELDS)


def _program(spec: Any, where: str, allowed: frozenset[str]) -> Program:
    if not isinstance(spec, dict):
        check.invalid(where, "must be a JSON object with StartAt and States")
    check.no_unknown_fields(spec, allowed, where)
    states = spec.get("States")
    if not isinstance(states, dict) or not states:
        check.invalid(where, "States must be a non-empty object")
    if spec.get("StartAt") not in states:
        check.invalid(where, f"StartAt {spec.get('StartAt')!r} is not one of its States")
    built = {name: _state(name, state_spec, where) for name, state_spec in states.items()}
    for name, state in built.items():
        for target in _transitions(state):
            if target not in states:
                check.invalid(_at(where, name), f"transition to unknown state {target!r}",
                              "MISSING_TRANSITION_TARGET")
    return Program(spec["StartAt"], built)


def _at(where: str, name: str) -> str:
    return f"state '{name}'" if where == "definition" else f"{where} > state '{name}'"


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
        check.invalid(at, "must be a JSON object")
    if len(name) > 80:
        check.invalid(at, "a state name is at most 80 characters")
    if spec.get("QueryLanguage", "JSONPath") != "JSONPath":
        check.refuse(at, f"QueryLanguage {spec['QueryLanguage']!r} is not supported (JSONPath only)")
    cls = STATE_TYPES.get(spec.get("Type"))
    if cls is None:
        check.invalid(at, f"state type {spec.get('Type')!r} is not one of {', '.join(sorted(STATE_TYPES))}")
    if cls is MapState:
        _refuse_distributed(spec, at)
    check.no_unknown_fields(spec, cls.fields | {"QueryLanguage"}, at, f"{cls.type_name} ")
    if cls.has_transition and not cls.terminal and ("Next" in spec) == (spec.get("End") is True):
        check.invalid(at, "needs exactly one of Next or End: true")
    for key in ("InputPath", "OutputPath"):
        if spec.get(key) is not None:
            check.check_path(spec[key], at, key)
    if "ItemsPath" in spec:
        check.check_reference_path(spec["ItemsPath"], at, "ItemsPath")
    if spec.get("ResultPath") is not None:
        check.check_result_path(spec["ResultPath"], at, "ResultPath")
    for key in ("Parameters", "ResultSelector", "ItemSelector"):
        if key in spec:
            check.check_template(spec[key], at, key)
    check.check_error_handling(spec, at)
    if cls is TaskState:
        check.check_task(spec, at)
    elif cls is ChoiceState:
        check.check_choice(spec, at)
    elif cls is FailState:
        check.check_fail(spec, at)
    elif cls is WaitState:
        check.check_wait(spec, at)
    elif cls is MapState:
        check.check_map_settings(spec, at)
        return MapState(name, spec, _map_processor(spec, at))
    elif cls is ParallelState:
        return ParallelState(name, spec, _parallel_branches(spec, at))
    return cls(name, spec)


def _refuse_distributed(spec: dict[str, Any], at: str) -> None:
    processor = spec.get("ItemProcessor", spec.get("Iterator"))
    config = processor.get("ProcessorConfig", {}) if isinstance(processor, dict) else {}
    if not isinstance(config, dict) or config.get("Mode", "INLINE") != "INLINE" or set(config) - {"Mode"}:
        check.refuse(at, f"ProcessorConfig {config} (Distributed Map, mode DISTRIBUTED) is not supported by "
                         "the local engine (inline Map only)")
    for key in DISTRIBUTED_MAP_FIELDS:
        if key in spec:
            check.refuse(at, f"{key} belongs to Distributed Map (mode DISTRIBUTED), which the local engine "
                             "does not run")


def _map_processor(spec: dict[str, Any], at: str) -> Program:
    if ("ItemProcessor" in spec) == ("Iterator" in spec):
        check.invalid(at, "Map needs exactly one of ItemProcessor or Iterator")
    if "ItemSelector" in spec and "Parameters" in spec:
        check.invalid(at, "Map takes ItemSelector or Parameters, not both")
    processor = spec.get("ItemProcessor", spec.get("Iterator"))
    return _program(processor, f"{at} > ItemProcessor", PROCESSOR_FIELDS)


def _parallel_branches(spec: dict[str, Any], at: str) -> list[Program]:
    branches = spec.get("Branches")
    if not isinstance(branches, list) or not branches:
        check.invalid(at, "Parallel needs a non-empty Branches list")
    return [_program(branch, f"{at} > Branches[{index}]", BRANCH_FIELDS)
            for index, branch in enumerate(branches)]
