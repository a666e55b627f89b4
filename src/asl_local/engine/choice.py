"""Choice: the first rule that matches picks the next state; Default otherwise; else
States.NoChoiceMatched. Comparisons follow AWS: a value of the wrong type simply does not match."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from asl_local.engine.core import Branch, State
from asl_local.errors import STATES_NO_CHOICE_MATCHED, STATES_RUNTIME, StatesFailure
from asl_local.limits import to_json
from asl_local.paths import PathNotFound, select, select_for
from asl_local.timestamps import is_timestamp, parse_timestamp

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq, "LessThan": operator.lt, "GreaterThan": operator.gt,
    "LessThanEquals": operator.le, "GreaterThanEquals": operator.ge,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_KINDS: dict[str, Callable[[Any], bool]] = {
    "String": lambda v: isinstance(v, str),
    "Numeric": _is_number,
    "Boolean": lambda v: isinstance(v, bool),
    "Timestamp": is_timestamp,
}


def _compare_timestamps(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda left, right: compare(parse_timestamp(left), parse_timestamp(right))


def string_matches(value: str, pattern: str) -> bool:
    """AWS StringMatches: `*` matches any run of characters; `\\*` is a literal asterisk (and `\\\\`
    a literal backslash)."""
    regex, pos = [], 0
    while pos < len(pattern):
        char = pattern[pos]
        if char == "\\" and pos + 1 < len(pattern):
            regex.append(re.escape(pattern[pos + 1]))
            pos += 2
            continue
        regex.append(".*" if char == "*" else re.escape(char))
        pos += 1
    return re.fullmatch("".join(regex), value, re.DOTALL) is not None


COMPARISONS: dict[str, tuple[Callable[[Any], bool], Callable[[Any, Any], bool]]] = {
    f"{kind}{order}": (is_kind, _compare_timestamps(compare) if kind == "Timestamp" else compare)
    for kind, is_kind in _KINDS.items() for order, compare in _ORDER.items()
    if kind != "Boolean" or order == "Equals"
}
PATH_COMPARISONS = frozenset(f"{op}Path" for op in COMPARISONS)
COMPARISONS["StringMatches"] = (_KINDS["String"], string_matches)  # no StringMatchesPath in ASL
TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None, "IsString": _KINDS["String"], "IsNumeric": _is_number,
    "IsBoolean": _KINDS["Boolean"], "IsTimestamp": is_timestamp,
}
OPERATORS = frozenset(COMPARISONS) | PATH_COMPARISONS | set(TYPE_TESTS) | {"IsPresent"}
RULE_KEYS = frozenset({"Variable", "Next", "Comment"})


def rule_operator(rule: dict[str, Any]) -> str | None:
    """The comparison key of a data-test rule (None for And/Or/Not)."""
    keys = [k for k in rule if k not in RULE_KEYS]
    return keys[0] if len(keys) == 1 and keys[0] not in ("And", "Or", "Not") else None


def rule_matches(rule: dict[str, Any], data: Any, context: dict[str, Any], state: str) -> bool:
    if "And" in rule:
        return all(rule_matches(r, data, context, state) for r in rule["And"])
    if "Or" in rule:
        return any(rule_matches(r, data, context, state) for r in rule["Or"])
    if "Not" in rule:
        return not rule_matches(rule["Not"], data, context, state)
    op = rule_operator(rule)
    variable = rule["Variable"]
    source, path = (context, variable[1:]) if variable.startswith("$$") else (data, variable)
    try:
        value = select(path, source)
    except PathNotFound:
        if op == "IsPresent":
            return rule[op] is False
        raise StatesFailure(STATES_RUNTIME, f"Invalid path '{variable}' in Choice state '{state}': the "
                                            f"choice state's condition path references an invalid value "
                                            f"(input {to_json(data)[:300]})") from None
    if op == "IsPresent":
        return rule[op] is True
    if op in TYPE_TESTS:
        return TYPE_TESTS[op](value) is rule[op]
    expected = rule[op]
    if op.endswith("Path"):
        op = op[:-4]
        expected = select_for(expected, data, context, state=state, field=f"{op}Path")
    is_kind, compare = COMPARISONS[op]
    return is_kind(value) and is_kind(expected) and compare(value, expected)


class ChoiceState(State):
    type_name = "Choice"
    fields = frozenset({"Type", "Comment", "Choices", "Default", "InputPath", "OutputPath"})
    has_transition = False

    def run(self, branch: Branch, raw_input: Any, context: dict[str, Any]) -> tuple[str | None, Any]:
        data = self.effective_input(raw_input, context)
        for rule in self.spec["Choices"]:
            if rule_matches(rule, data, context, self.name):
                return rule["Next"], self.state_output(data, context)
        if "Default" in self.spec:
            return self.spec["Default"], self.state_output(data, context)
        raise StatesFailure(STATES_NO_CHOICE_MATCHED,
                            f"No Choice rule of state '{self.name}' matched and it has no Default")
