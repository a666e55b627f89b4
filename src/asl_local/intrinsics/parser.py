"""Intrinsic function calls (`States.Format('{}', $.x)`): parsing, load-time checks (known name, arity,
nesting depth) and evaluation. The functions themselves live in functions.py."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from asl_local.errors import STATES_RUNTIME, StatesFailure
from asl_local.intrinsics.functions import (
    FUNCTIONS,
    IntrinsicError,
    math_random,
    states_format,
)
from asl_local.paths import check_path_syntax, select_for

# AWS: "You can nest up to 10 intrinsic functions within a field."
# https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html
MAX_NESTING = 10


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
    raw: str | None = None  # a string literal as written, escapes kept (States.Format's \\{ and \\})


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
            start = self.pos + 1
            value = self.string()
            return Literal(value, self.text[start:self.pos - 1])
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
            if char == "\\" and self.text[self.pos + 1:self.pos + 2] in ("'", "{", "}", "\\"):
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


@lru_cache(maxsize=1024)
def parse_intrinsic(text: str) -> Call:
    """Parse and check an intrinsic call; raises IntrinsicSyntaxError (also for unsupported names)."""
    parser = _Parser(text.strip())
    parsed = parser.call()
    if parser.pos != len(parser.text):
        raise parser.fail("trailing text after the call")
    _check_supported(parsed)
    return parsed


def _check_supported(call: Call, depth: int = 1) -> None:
    if depth > MAX_NESTING:
        raise IntrinsicSyntaxError(f"intrinsic functions are nested more than {MAX_NESTING} deep "
                                   "(the AWS limit)")
    signature = FUNCTIONS.get(call.name)
    if signature is None:
        raise IntrinsicSyntaxError(f"{call.name} is not an intrinsic function "
                                   f"(known: {', '.join(sorted(FUNCTIONS))})")
    count = len(call.args)
    if count < signature.min_args or (signature.max_args is not None and count > signature.max_args):
        wanted = (f"{signature.min_args}" if signature.min_args == signature.max_args else
                  f"at least {signature.min_args}" if signature.max_args is None else
                  f"{signature.min_args} to {signature.max_args}")
        raise IntrinsicSyntaxError(f"{call.name} takes {wanted} arguments, not {count}")
    if call.name == "States.Format" and isinstance(call.args[0], Literal) and not isinstance(
            call.args[0].value, str):
        raise IntrinsicSyntaxError("States.Format's first argument must be a string")
    for arg in call.args:
        if isinstance(arg, Call):
            _check_supported(arg, depth + 1)


def evaluate_intrinsic(text: str, data: Any, context: dict[str, Any], *, state: str, field: str,
                       rng: random.Random | None = None) -> Any:
    """The value of the intrinsic call `text`; StatesFailure(States.Runtime) when a function rejects its
    arguments or a path argument selects nothing. AWS: "States.IntrinsicFailure - This error name is
    reserved for future use. Intrinsic function processing errors are reported with the States.Runtime
    error name." (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html)"""
    def value_of(arg: Any) -> Any:
        if isinstance(arg, Literal):
            return arg.value
        if isinstance(arg, PathArg):
            return select_for(arg.path, data, context, state=state, field=field)
        return run(arg)

    def run(call: Call) -> Any:
        args = [value_of(arg) for arg in call.args]
        try:
            if call.name == "States.Format":
                template = call.args[0]
                return states_format(*args, raw=template.raw if isinstance(template, Literal) else None)
            if call.name == "States.MathRandom":
                return math_random(*args, rng=rng or random.Random())
            return FUNCTIONS[call.name].function(*args)
        except IntrinsicError as exc:
            raise StatesFailure(STATES_RUNTIME, f"An error occurred while executing the state '{state}'. "
                                                f"The function '{call.name}' in field '{field}' had the "
                                                f"following error: {exc}") from None

    try:
        parsed = parse_intrinsic(text)
    except IntrinsicSyntaxError as exc:
        raise StatesFailure(STATES_RUNTIME, f"State '{state}', field '{field}': {exc}") from None
    return run(parsed)
