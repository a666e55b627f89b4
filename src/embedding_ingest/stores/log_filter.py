"""CloudWatch Logs filter patterns (what `aws logs filter-log-events --filter-pattern` takes), compiled
to a predicate over one log event's message.

The syntax, from "Filter pattern syntax for metric filters, subscription filters, filter log events,
and Live Tail" (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html):
- Terms, case-sensitive: `ERROR ARGUMENTS` (every term), `?ERROR ?ARGUMENTS` (any of them),
  `ERROR -ARGUMENTS` (excluded), `"INTERNAL SERVER ERROR"` (an exact phrase; terms with characters
  other than letters, digits and `_` are quoted). An empty pattern, or `" "`, matches everything.
  An unquoted term matches a whole word (not inside a longer run of letters, digits and `_`); a
  quoted phrase matches anywhere.
- JSON: `{ SELECTOR OP VALUE }` on messages that are JSON objects. Selectors `$.a.b`, `$.list[0]`,
  `$.objs[1].id`; `=`/`!=` with strings (quoted unless letters, digits and `_`; `*` is a wildcard);
  `= != < > <= >=` with numbers (signs, scientific notation; `*` wildcards compare as text:
  `{ $.ip != 123.123.* }`); `IS NULL`, `IS TRUE`, `IS FALSE`, `NOT EXISTS`; `&&`, `||` and
  parentheses, in that precedence. A selector that points to an object or an array matches nothing.
- `%regex%`: a regular expression, anywhere in the message.
Space-delimited patterns (`[w1, w2]`) are refused with a one-line error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from embedding_ingest.exceptions import InvalidInputError

Predicate = Callable[[str], bool]
_WORD = re.compile(r"[A-Za-z0-9_]")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_TOKEN = re.compile(r"""\s*(\|\||&&|!=|<=|>=|[=<>(){}]|"(?:[^"\\]|\\.)*"|\$[^\s=!<>()&|]*|[^\s=!<>()&|"]+)""")
_MISSING = object()


class InvalidFilterPatternError(InvalidInputError):
    """A filter pattern CloudWatch Logs would refuse (its InvalidParameterException)."""

    def __init__(self, pattern: str, why: str) -> None:
        super().__init__(f"Invalid filter pattern: {pattern!r} ({why})")


def compile_filter_pattern(pattern: str | None) -> Predicate:
    """The predicate `message -> bool` of `pattern` (None or blank: everything matches).
    Raises InvalidFilterPatternError saying what is wrong."""
    text = (pattern or "").strip()
    if not text or re.fullmatch(r'"\s*"', text):
        return lambda message: True
    if text.startswith("{"):
        if not text.endswith("}"):
            raise InvalidFilterPatternError(pattern or "", "if a filter pattern starts with '{' it must end "
                                                           "with '}'")
        return _json_pattern(text, pattern or "")
    if text.startswith("["):
        raise InvalidFilterPatternError(pattern or "", "space-delimited patterns ([w1, w2]) are not "
                                                       "supported here; use terms or a JSON pattern")
    if len(text) > 1 and text.startswith("%") and text.endswith("%"):
        try:
            regex = re.compile(text[1:-1])
        except re.error as exc:
            raise InvalidFilterPatternError(pattern or "", f"bad regular expression: {exc}") from None
        return lambda message: regex.search(message) is not None
    return _term_pattern(text, pattern or "")


# -- terms ----------------------------------------------------------------------------------------

def _term_matcher(term: str, quoted: bool) -> Predicate:
    if quoted:
        return lambda message: term in message
    before = r"(?<![A-Za-z0-9_])" if _WORD.match(term[0]) else ""
    after = r"(?![A-Za-z0-9_])" if _WORD.match(term[-1]) else ""
    regex = re.compile(before + re.escape(term) + after)
    return lambda message: regex.search(message) is not None


def _term_pattern(text: str, pattern: str) -> Predicate:
    required: list[Predicate] = []
    excluded: list[Predicate] = []
    optional: list[Predicate] = []
    for match in re.finditer(r'\s*([?-]?)("(?:[^"\\]|\\.)*"|[^\s"]+)', text):
        prefix, body = match.groups()
        quoted = body.startswith('"')
        if quoted:
            if len(body) < 2 or not body.endswith('"'):
                raise InvalidFilterPatternError(pattern, "an unclosed quotation mark")
            body = re.sub(r"\\(.)", r"\1", body[1:-1])
        if not body:
            raise InvalidFilterPatternError(pattern, f"an empty term after {prefix!r}")
        matcher = _term_matcher(body, quoted)
        {"": required, "-": excluded, "?": optional}[prefix].append(matcher)
    if text.count('"') % 2:
        raise InvalidFilterPatternError(pattern, "an unclosed quotation mark")

    def matches(message: str) -> bool:
        return (all(m(message) for m in required) and not any(m(message) for m in excluded)
                and (not optional or any(m(message) for m in optional)))

    return matches


# -- JSON patterns --------------------------------------------------------------------------------

class _Parser:
    """Recursive descent over the tokens between the braces: or := and ('||' and)*,
    and := unit ('&&' unit)*, unit := '(' or ')' | comparison."""

    def __init__(self, text: str, pattern: str) -> None:
        self.pattern = pattern
        self.tokens: list[str] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None:
                if text[position:].strip():
                    raise self.error(f"unexpected {text[position:].strip()[:20]!r}")
                break
            self.tokens.append(match.group(1))
            position = match.end()
        self.index = 0

    def error(self, why: str) -> InvalidFilterPatternError:
        return InvalidFilterPatternError(self.pattern, why)

    def peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise self.error("the expression ends too early")
        self.index += 1
        return token

    def parse(self) -> Callable[[Any], bool]:
        expression = self.or_()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()!r}")
        return expression

    def or_(self) -> Callable[[Any], bool]:
        parts = [self.and_()]
        while self.peek() == "||":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else (lambda doc: any(p(doc) for p in parts))

    def and_(self) -> Callable[[Any], bool]:
        parts = [self.unit()]
        while self.peek() == "&&":
            self.take()
            parts.append(self.unit())
        return parts[0] if len(parts) == 1 else (lambda doc: all(p(doc) for p in parts))

    def unit(self) -> Callable[[Any], bool]:
        if self.peek() == "(":
            self.take()
            inner = self.or_()
            if self.peek() != ")":
                raise self.error("a '(' is not closed")
            self.take()
            return inner
        return self.comparison()

    def comparison(self) -> Callable[[Any], bool]:
        selector = self.take()
        if not selector.startswith("$."):
            raise self.error(f"{selector!r} is no property selector (they start with '$.', as in "
                             "{ $.batch_id = \"x\" })")
        path = _selector_path(selector, self)
        operator = self.take()
        if operator == "IS":
            expected = {"NULL": None, "TRUE": True, "FALSE": False}.get(self.take(), _MISSING)
            if expected is _MISSING:
                raise self.error("IS takes NULL, TRUE or FALSE")
            return lambda doc: (found := _select(doc, path)) is not _MISSING and found is expected
        if operator == "NOT":
            if self.take() != "EXISTS":
                raise self.error("NOT takes EXISTS")
            return lambda doc: _select(doc, path) is _MISSING
        if operator not in ("=", "!=", "<", ">", "<=", ">="):
            raise self.error(f"{operator!r} is no comparison (=, !=, <, >, <=, >=, IS, NOT EXISTS)")
        return _compare(path, operator, self.take(), self)


def _selector_path(selector: str, parser: _Parser) -> list[str | int]:
    path: list[str | int] = []
    for name, index in re.findall(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]", selector[1:]):
        path.append(int(index) if index else name)
    rebuilt = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    if not path or rebuilt != selector[1:]:
        raise parser.error(f"bad property selector {selector!r}")
    return path


def _select(document: Any, path: list[str | int]) -> Any:
    value = document
    for step in path:
        found = (isinstance(step, int) and isinstance(value, list) and step < len(value)) or (
            isinstance(step, str) and isinstance(value, dict) and step in value)
        if not found:
            return _MISSING
        value = value[step]
    return value


def _glob(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in text.split("*")), re.DOTALL)


def _compare(path: list[str | int], operator: str, operand: str, parser: _Parser) -> Callable[[Any], bool]:
    quoted = operand.startswith('"')
    if quoted:
        operand = re.sub(r"\\(.)", r"\1", operand[1:-1])
    number = None if quoted or "*" in operand or not _NUMBER.fullmatch(operand) else float(operand)
    if number is None and operator not in ("=", "!="):
        raise parser.error(f"{operator} compares numbers, not {operand!r}")
    if not quoted and number is None and not re.fullmatch(r"[A-Za-z0-9_.*:+-]+", operand):
        raise parser.error(f"{operand!r} must be quoted")
    pattern = None if number is not None else _glob(operand)
    wanted = operator != "!="

    def check(document: Any) -> bool:
        value = _select(document, path)
        if value is _MISSING or value is None or isinstance(value, (dict, list)):
            return False
        if number is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False
            return {"=": value == number, "!=": value != number, "<": value < number, ">": value > number,
                    "<=": value <= number, ">=": value >= number}[operator]
        text = value if isinstance(value, str) else json.dumps(value)
        return bool(pattern.fullmatch(text)) is wanted

    return check


def _json_pattern(text: str, pattern: str) -> Predicate:
    expression = _Parser(text[1:-1], pattern).parse()

    def matches(message: str) -> bool:
        try:
            document = json.loads(message)
        except ValueError:
            return False
        return isinstance(document, dict) and expression(document)

    return matches
