"""The intrinsic functions the engine interprets (a small, explicit subset; anything else is refused when
the definition is checked, naming the state and field)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from embedding_ingest.workflow.exceptions import STATES_INTRINSIC_FAILURE, StatesFailure
from embedding_ingest.workflow.limits import to_json
from embedding_ingest.workflow.paths import check_path_syntax, select_for


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class PathArg:
    path: str


@dataclass(frozen=True)
class Literal:
    value: Any


class IntrinsicSyntaxError(ValueError):
    pass


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, why: str) -> IntrinsicSyntaxError:
        return IntrinsicSyntaxError(f"{why} at offset {self.pos} of {self.text!r}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def call(self) -> Call:
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] == "."):
            self.pos += 1
        name = self.text[start:self.pos]
        if not name.startswith("States.") or self.text[self.pos:self.pos + 1] != "(":
            raise self.fail("expected States.Function(")
        self.pos += 1
        args: list[Any] = []
        self.skip_spaces()
        if self.text[self.pos:self.pos + 1] == ")":
            self.pos += 1
            return Call(name, ())
        while True:
            self.skip_spaces()
            args.append(self.argument())
            self.skip_spaces()
            char = self.text[self.pos:self.pos + 1]
            self.pos += 1
            if char == ")":
                return Call(name, tuple(args))
            if char != ",":
                raise self.fail("expected ',' or ')'")

    def argument(self) -> Any:
        char = self.text[self.pos:self.pos + 1]
        if char == "'":
            return Literal(self.string())
        if char == "$":
            return PathArg(self.path())
        if self.text.startswith("States.", self.pos):
            return self.call()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",) \t\n":
            self.pos += 1
        word = self.text[start:self.pos]
        try:
            return Literal(json.loads(word))  # numbers, true, false, null
        except json.JSONDecodeError:
            raise self.fail(f"unexpected argument {word!r}") from None

    def string(self) -> str:
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                chars.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if char == "'":
                return "".join(chars)
            chars.append(char)
        raise self.fail("unterminated string")

    def path(self) -> str:
        start, depth, quote = self.pos, 0, None
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if quote:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "[":
                depth += 1
            elif char == "]":
                depth -= 1
            elif depth == 0 and (char in ",)" or char.isspace()):
                break
            self.pos += 1
        path = self.text[start:self.pos]
        check_path_syntax(path[1:] if path.startswith("$$") else path)
        return path


def _format(template: str, *values: Any) -> str:
    pieces = template.replace("\\{", "\0L").replace("\\}", "\0R").split("{}")
    if len(pieces) - 1 != len(values):
        raise ValueError(f"States.Format has {len(pieces) - 1} placeholders but {len(values)} values")
    out = pieces[0]
    for value, piece in zip(values, pieces[1:], strict=True):
        if isinstance(value, dict | list):
            raise ValueError("States.Format takes strings, numbers, booleans or null, not objects/arrays")
        out += (value if isinstance(value, str) else to_json(value)) + piece
    return out.replace("\0L", "{").replace("\0R", "}")


def _json_merge(left: dict, right: dict, deep: bool) -> dict:
    if deep:
        raise ValueError("States.JsonMerge deep mode is not supported (AWS supports only false)")
    return {**left, **right}


def _array_get_item(array: list, index: int) -> Any:
    return array[index]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "States.Format": _format,
    "States.StringToJson": json.loads,
    "States.JsonToString": to_json,
    "States.Array": lambda *values: list(values),
    "States.ArrayLength": len,
    "States.ArrayGetItem": _array_get_item,
    "States.JsonMerge": _json_merge,
    "States.MathAdd": lambda a, b: a + b,
}


@lru_cache(maxsize=1024)
def parse_intrinsic(text: str) -> Call:
    """Parse and check an intrinsic call; raises IntrinsicSyntaxError (also for unsupported names)."""
    parser = _Parser(text.strip())
    parsed = parser.call()
    if parser.pos != len(parser.text):
        raise parser.fail("trailing text after the call")
    _check_supported(parsed)
    return parsed


def _check_supported(call: Call) -> None:
    if call.name not in FUNCTIONS:
        raise IntrinsicSyntaxError(f"intrinsic function {call.name} is not supported by the local engine "
                                   f"(supported: {', '.join(sorted(FUNCTIONS))})")
    for arg in call.args:
        if isinstance(arg, Call):
            _check_supported(arg)


def evaluate_intrinsic(text: str, data: Any, context: dict[str, Any], *, state: str, field: str) -> Any:
    def value_of(arg: Any) -> Any:
        if isinstance(arg, Literal):
            return arg.value
        if isinstance(arg, PathArg):
            return select_for(arg.path, data, context, state=state, field=field)
        return run(arg)

    def run(call: Call) -> Any:
        args = [value_of(arg) for arg in call.args]
        try:
            return FUNCTIONS[call.name](*args)
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise StatesFailure(STATES_INTRINSIC_FAILURE,
                                f"State '{state}', field '{field}': {call.name} failed: {exc}") from None

    try:
        parsed = parse_intrinsic(text)
    except IntrinsicSyntaxError as exc:
        raise StatesFailure(STATES_INTRINSIC_FAILURE, f"State '{state}', field '{field}': {exc}") from None
    return run(parsed)
