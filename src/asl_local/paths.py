"""JSONPath as Step Functions uses it: reference paths (ResultPath and simple lookups), general paths
(jsonpath-ng, for wildcards/filters/slices) and the context object ($$). Payload templates, which
also take intrinsic functions, are in templates.py."""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

from jsonpath_ng.ext import parse as parse_jsonpath

from asl_local.errors import (
    STATES_RESULT_PATH_MATCH_FAILURE,
    STATES_RUNTIME,
    StatesFailure,
)
from asl_local.limits import to_json

_SEGMENT = re.compile(r"""\.([^.\[\]'"*@?()]+)|\[(\d+)\]|\['([^']*)'\]|\["([^"]*)"\]""")


class PathNotFound(LookupError):  # noqa: N818 - control flow: a path selected nothing
    pass


class PathSyntaxError(ValueError):
    pass


@lru_cache(maxsize=4096)
def reference_segments(path: str) -> tuple[str | int, ...] | None:
    """Segments of a reference path ("$.a['b'][0]" -> ("a", "b", 0)), or None when `path` is a
    general path (wildcards, filters, slices, recursive descent)."""
    if not path.startswith("$"):
        raise PathSyntaxError(f"a path must start with '$': {path!r}")
    segments: list[str | int] = []
    pos = 1
    while pos < len(path):
        match = _SEGMENT.match(path, pos)
        if match is None:
            return None
        name, index, single, double = match.groups()
        segments.append(int(index) if index is not None else next(
            s for s in (name, single, double) if s is not None))
        pos = match.end()
    return tuple(segments)


@lru_cache(maxsize=1024)
def _compiled(path: str):
    try:
        return parse_jsonpath(path)
    except Exception as exc:  # JsonPathParserError, and bare Exceptions from jsonpath-ng's lexer
        raise PathSyntaxError(f"invalid JSONPath {path!r}: {exc}") from exc


def check_path_syntax(path: str) -> None:
    if reference_segments(path) is None:
        _compiled(path)


def select(path: str, data: Any) -> Any:
    """The value `path` selects in `data`. A reference path selects one value (PathNotFound if absent);
    a general path selects the list of every match, like AWS."""
    segments = reference_segments(path)
    if segments is None:
        return [match.value for match in _compiled(path).find(data)]
    value = data
    for segment in segments:
        if isinstance(segment, int):
            if not isinstance(value, list) or segment >= len(value):
                raise PathNotFound(path)
            value = value[segment]
        else:
            if not isinstance(value, dict) or segment not in value:
                raise PathNotFound(path)
            value = value[segment]
    return value


def select_for(path: str, data: Any, context: dict[str, Any], *, state: str, field: str) -> Any:
    """Resolve a `$...` or `$$...` path for `field` of `state`, failing like AWS when it is absent."""
    source, own_path = (context, path[1:]) if path.startswith("$$") else (data, path)
    try:
        return select(own_path, source)
    except PathNotFound:
        shown = to_json(source)
        shown = shown if len(shown) <= 400 else shown[:400] + "..."
        raise StatesFailure(
            STATES_RUNTIME,
            f"An error occurred while executing the state '{state}'. The JSONPath '{path}' specified "
            f"for the field '{field}' could not be found in the input '{shown}'") from None


def apply_input_path(path: str | None, data: Any, context: dict[str, Any], *, state: str) -> Any:
    """InputPath/OutputPath: null means an empty object; "$" the whole value."""
    if path is None:
        return {}
    if path == "$":
        return data
    return select_for(path, data, context, state=state, field="InputPath/OutputPath")


def apply_result_path(path: str | None, raw_input: Any, result: Any, *, state: str) -> Any:
    """ResultPath: null keeps the input and discards the result; "$" replaces the input; otherwise the
    result is placed at the reference path inside a copy of the input (intermediate objects created)."""
    if path is None:
        return raw_input
    if path == "$":
        return result
    segments = reference_segments(path)
    if segments is None or any(isinstance(s, int) for s in segments):
        raise StatesFailure(STATES_RUNTIME, f"State '{state}': ResultPath {path!r} is not a reference "
                                            "path into objects")
    if not isinstance(raw_input, dict):
        raise _result_path_mismatch(state, path, raw_input)
    output = copy.copy(raw_input)
    node = output
    for segment in segments[:-1]:
        child = node.get(segment)
        if child is None:
            child = {}
        elif not isinstance(child, dict):
            raise _result_path_mismatch(state, path, raw_input)
        else:
            child = copy.copy(child)
        node[segment] = child
        node = child
    node[segments[-1]] = result
    return output


def _result_path_mismatch(state: str, path: str, raw_input: Any) -> StatesFailure:
    # AWS raises the catchable States.ResultPathMatchFailure here, not States.Runtime.
    return StatesFailure(STATES_RESULT_PATH_MATCH_FAILURE,
                         f"Unable to apply step \"{path}\" to input {to_json(raw_input)[:200]} "
                         f"(state '{state}')")
