"""Execution names: exactly the names Step Functions' StartExecution accepts, and a key segment that is
safe for every one of them.

The rule (AWS Step Functions API reference, StartExecution `name`): 1-80 characters, none of them
whitespace, brackets `< > { } [ ]`, wildcards `? *`, the characters `" # % \\ ^ | ~ ` $ & , ; : /`,
control characters (U+0000-001F, U+007F-009F), U+FFFE-FFFF or surrogates. Letters of any script and
`. ( ) ! ' @ = + _ -` are valid.
"""

from __future__ import annotations

import hashlib
import re

from embedding_ingest.exceptions import InvalidInputError

MAX_EXECUTION_NAME_LENGTH = 80
_FORBIDDEN = "<>{}[]?*\"#%\\^|~`$&,;:/"
_EXECUTION_NAME = re.compile(
    r"[^\s" + re.escape(_FORBIDDEN) + r"\x00-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]{1,80}")
EXECUTION_NAME_RULE = ("1-80 characters, none of them whitespace, brackets < > { } [ ], wildcards ? *, "
                       "the characters \" # % \\ ^ | ~ ` $ & , ; : / or control characters")

# What may appear verbatim in an object key segment (and a local file name) on every backend.
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@=+-]{0,199}")
_READABLE = re.compile(r"[^A-Za-z0-9._@=+-]+")


def is_execution_name(name: str) -> bool:
    return bool(_EXECUTION_NAME.fullmatch(name))


def validate_execution_name(name: str) -> str:
    """Return `name` if StartExecution would accept it; raise InvalidInputError naming the rule."""
    if not is_execution_name(name):
        raise InvalidInputError(f"execution name {name!r} is invalid: {EXECUTION_NAME_RULE}")
    return name


def is_safe_segment(value: str) -> bool:
    return bool(_SAFE_SEGMENT.fullmatch(value)) and ".." not in value


def execution_key_segment(name: str) -> str:
    """A deterministic object-key segment for a valid execution name.

    Names made only of ASCII letters, digits and `. _ : @ = + -` (starting with a letter or digit, no
    `..`) are used as they are, so existing keys keep their layout. Any other valid name ("reçu-é",
    "日本", "_lead", "run(1)") becomes its readable ASCII part plus 16 hex digits of its SHA-256: the
    same name always gives the same segment, and two names share one only on a 64-bit hash collision.
    Raises InvalidInputError for a string that is not a valid execution name."""
    if is_safe_segment(name):
        return name
    validate_execution_name(name)
    readable = _READABLE.sub("_", name).strip("._-")[:40].replace("..", "_")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    if not readable or not readable[0].isalnum():
        readable = "x" + readable
    return f"{readable}-{digest}"
