"""Execution names: exactly the names Step Functions' StartExecution accepts.

The rule (AWS Step Functions API reference, StartExecution `name`): 1-80 characters, none of them
whitespace, brackets `< > { } [ ]`, wildcards `? *`, the characters `" # % \\ ^ | ~ ` $ & , ; : /`,
control characters (U+0000-001F, U+007F-009F), U+FFFE-FFFF or surrogates. Letters of any script and
`. ( ) ! ' @ = + _ -` are valid.
"""

from __future__ import annotations

import re

from asl_local.errors import InvalidName

MAX_EXECUTION_NAME_LENGTH = 80
_FORBIDDEN = "<>{}[]?*\"#%\\^|~`$&,;:/"
_EXECUTION_NAME = re.compile(
    r"[^\s" + re.escape(_FORBIDDEN) + r"\x00-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]{1,80}")
EXECUTION_NAME_RULE = ("1-80 characters, none of them whitespace, brackets < > { } [ ], wildcards ? *, "
                       "the characters \" # % \\ ^ | ~ ` $ & , ; : / or control characters")


def is_execution_name(name: str) -> bool:
    """Whether StartExecution would accept `name`."""
    return bool(_EXECUTION_NAME.fullmatch(name))


def validate_execution_name(name: str) -> str:
    """Return `name` if StartExecution would accept it; raise InvalidName naming the rule."""
    if not is_execution_name(name):
        raise InvalidName(f"execution name {name!r} is invalid: {EXECUTION_NAME_RULE}")
    return name
