"""JSON on the hot paths (output lines, flat records, ledger metadata): orjson where it gives the same
values as the standard library, `json` for what orjson cannot do exactly.

orjson parses and writes ~5-10x faster than `json`, but it refuses NaN/Infinity literals (which
`json.dumps` writes and `json.loads` reads), writes NaN/Infinity as `null`, refuses integers beyond 64
bits when writing, and reads such integers as floats (orjson 3.x). Readers here fall back to `json`
on what orjson refuses; the writer falls back whenever orjson's text could read back differently."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def loads(raw: bytes | str) -> Any:
    """Parse one JSON text. orjson first; a text it refuses (NaN or Infinity literals written by
    `json.dumps`, or a real syntax error) goes through `json`, which accepts the former and raises
    json.JSONDecodeError (a ValueError) naming the position for the latter."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON bytes that `loads` reads back as an equal value: orjson's output,
    unless it could differ (orjson writes a non-finite float as `null` and refuses integers beyond
    64 bits), then `json.dumps` with compact separators (NaN/Infinity literals, exact integers).
    Raises TypeError for a value neither can write (as json.dumps does)."""
    try:
        text = orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()
    # `null` comes from None or from a non-finite float; only the second needs json (a None, or
    # "null" inside a string, merely takes the slower writer).
    if b"null" in text:
        return json.dumps(value, separators=(",", ":")).encode()
    return text
