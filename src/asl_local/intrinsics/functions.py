"""Every JSONPath intrinsic function of Step Functions, with the argument checks AWS makes.

Source: https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html (arities, the
1000-item ArrayRange limit, the 10,000-character Hash/Base64 input limit, the hash algorithms, MathAdd
rounding non-integers to the nearest integer, JsonMerge supporting only shallow merges). A function
raises `IntrinsicError` with a one-line reason; the engine reports it as States.Runtime, as AWS
does (an execution on AWS fails with States.Runtime, cause "Invalid arguments in States.MathAdd").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asl_local.limits import to_json

MAX_ARRAY_RANGE_ITEMS = 1000
MAX_TEXT_INPUT_CHARS = 10_000
HASH_ALGORITHMS = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384",
                   "SHA-512": "sha512"}


class IntrinsicError(ValueError):
    """An intrinsic function was given arguments it does not accept."""


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _need(ok: bool, why: str) -> None:
    if not ok:
        raise IntrinsicError(why)


def _array(value: Any, what: str = "the first argument") -> list:
    _need(isinstance(value, list), f"{what} must be a JSON array, got {to_json(value)[:80]}")
    return value


def _text(value: Any, what: str = "the argument", limit: int | None = None) -> str:
    _need(isinstance(value, str), f"{what} must be a string, got {to_json(value)[:80]}")
    if limit is not None:
        _need(len(value) <= limit, f"{what} has {len(value)} characters, over the limit of {limit}")
    return value


def _integer(value: Any, what: str) -> int:
    _need(is_integer(value), f"{what} must be an integer, got {to_json(value)[:80]}")
    return value


def format_value(value: Any) -> str:
    """How States.Format writes a non-string: JSON scalars as JSON, objects as {k=v, ...} and arrays as
    [a, b] (the rendering recorded against AWS in LocalStack's snapshot tests)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={format_value(item)}" for key, item in value.items()) + "}"
    return to_json(value)


def split_template(raw: str, escaped: bool) -> list[str]:
    """The literal pieces around each `{}` of a Format template. In a template written in the
    definition (`escaped`), `\\{`, `\\}` and `\\\\` stand for `{`, `}` and `\\`."""
    pieces, current, pos = [], [], 0
    while pos < len(raw):
        char = raw[pos]
        if escaped and char == "\\" and pos + 1 < len(raw):
            current.append(raw[pos + 1])
            pos += 2
        elif raw.startswith("{}", pos):
            pieces.append("".join(current))
            current = []
            pos += 2
        else:
            current.append(char)
            pos += 1
    pieces.append("".join(current))
    return pieces


def states_format(template: Any, *values: Any, raw: str | None = None) -> str:
    pieces = split_template(raw if raw is not None else _text(template, "the template"), raw is not None)
    _need(len(pieces) - 1 == len(values),
          f"the template has {len(pieces) - 1} placeholders but {len(values)} values were given")
    return pieces[0] + "".join(format_value(v) + piece for v, piece in zip(values, pieces[1:], strict=True))


def _reject_constant(name: str) -> Any:
    raise IntrinsicError(f"{name} is not valid JSON")


def string_to_json(text: Any) -> Any:
    text = _text(text)
    try:
        return json.loads(text, parse_constant=_reject_constant) if text.strip() else None
    except json.JSONDecodeError as exc:
        raise IntrinsicError(f"the argument is not valid JSON: {exc}") from None


def json_merge(left: Any, right: Any, deep: Any) -> dict:
    _need(isinstance(left, dict) and isinstance(right, dict), "both values to merge must be JSON objects")
    _need(deep is False, "only a shallow merge is supported: the third argument must be false")
    return {**left, **right}


def array_partition(array: Any, size: Any) -> list:
    items = _array(array)
    _need(is_integer(size) and size > 0, f"the chunk size must be a positive integer, got {to_json(size)}")
    return [items[start:start + size] for start in range(0, len(items), size)]


def array_range(start: Any, end: Any, step: Any) -> list:
    first, last, by = (_integer(v, what) for v, what in ((start, "start"), (end, "end"), (step, "step")))
    _need(by != 0, "step must not be 0")
    items = list(range(first, last + (1 if by > 0 else -1), by))
    _need(len(items) <= MAX_ARRAY_RANGE_ITEMS,
          f"the range has {len(items)} items, over the limit of {MAX_ARRAY_RANGE_ITEMS}")
    return items


def array_get_item(array: Any, index: Any) -> Any:
    items = _array(array)
    _integer(index, "the index")
    _need(0 <= index < len(items), f"index {index} is out of bounds for an array of {len(items)} items")
    return items[index]


def json_key(value: Any) -> str:
    """A key equal for equal JSON values (Python alone says True == 1; JSON says 1 == 1.0)."""
    return to_json(float(value)) if is_number(value) else to_json(value)


def array_contains(array: Any, value: Any) -> bool:
    return json_key(value) in {json_key(item) for item in _array(array)}


def array_unique(array: Any) -> list:
    unique: list[Any] = []
    seen: set[str] = set()
    for item in _array(array):
        key = json_key(item)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def base64_decode(text: Any) -> str:
    data = _text(text, limit=MAX_TEXT_INPUT_CHARS)
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise IntrinsicError(f"the argument is not base64 of UTF-8 text: {exc}") from None


def states_hash(text: Any, algorithm: Any) -> str:
    data = _text(text, "the data", MAX_TEXT_INPUT_CHARS)
    _need(algorithm in HASH_ALGORITHMS,
          f"unknown hash algorithm {to_json(algorithm)} (one of {', '.join(HASH_ALGORITHMS)})")
    return hashlib.new(HASH_ALGORITHMS[algorithm], data.encode("utf-8")).hexdigest()


def round_half_up(value: Any) -> int:
    """Nearest integer, halves away from minus infinity (Java's Math.round, which AWS uses)."""
    _need(is_number(value), f"the value must be a number, got {to_json(value)[:80]}")
    return int(math.floor(value + 0.5)) if isinstance(value, float) else value


def math_random(start: Any, end: Any, seed: Any = None, *, rng: random.Random) -> int:
    low, high = _integer(start, "start"), _integer(end, "end")
    _need(low <= high, "start must not be greater than end")
    generator = rng if seed is None else random.Random(_integer(seed, "seed"))
    return generator.randint(low, high)


def string_split(text: Any, delimiters: Any) -> list[str]:
    source, chars = _text(text, "the string"), _text(delimiters, "the delimiter")
    parts, current = [], []
    for char in source:
        if char in chars:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part]


@dataclass(frozen=True)
class Signature:
    function: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: any number


FUNCTIONS: dict[str, Signature] = {
    "States.Format": Signature(states_format, 1, None),
    "States.StringToJson": Signature(string_to_json, 1, 1),
    "States.JsonToString": Signature(to_json, 1, 1),
    "States.Array": Signature(lambda *values: list(values), 0, None),
    "States.ArrayPartition": Signature(array_partition, 2, 2),
    "States.ArrayContains": Signature(array_contains, 2, 2),
    "States.ArrayRange": Signature(array_range, 3, 3),
    "States.ArrayGetItem": Signature(array_get_item, 2, 2),
    "States.ArrayLength": Signature(lambda array: len(_array(array)), 1, 1),
    "States.ArrayUnique": Signature(array_unique, 1, 1),
    "States.Base64Encode": Signature(
        lambda text: base64.b64encode(_text(text, limit=MAX_TEXT_INPUT_CHARS).encode()).decode(), 1, 1),
    "States.Base64Decode": Signature(base64_decode, 1, 1),
    "States.Hash": Signature(states_hash, 2, 2),
    "States.JsonMerge": Signature(json_merge, 3, 3),
    "States.MathRandom": Signature(math_random, 2, 3),
    "States.MathAdd": Signature(lambda a, b: round_half_up(a) + round_half_up(b), 2, 2),
    "States.StringSplit": Signature(string_split, 2, 2),
    "States.UUID": Signature(lambda: str(uuid.uuid4()), 0, 0),
}
