"""Execution names: exactly StartExecution's rule."""

from __future__ import annotations

import pytest

from asl_local.errors import InvalidName
from asl_local.names import is_execution_name, validate_execution_name

FORBIDDEN = list(" \t\n<>{}[]?*\"#%\\^|~`$&,;:/") + ["\x00", "\x1f", "\x7f", "\x9f", "\ufffe", "\uffff",
                                                   "\ud800", "\u2003"]
VALID = ["reçu-é", "日本", "_lead", "run(1)", ".hidden", "a..b", "x!'@=+", "line-20261129T160749-6c59cd4c",
         "a" * 80]


@pytest.mark.parametrize("name", VALID)
def test_valid_names_are_accepted(name):
    assert validate_execution_name(name) == name


@pytest.mark.parametrize("char", FORBIDDEN)
def test_each_forbidden_character_is_refused_with_the_rule(char):
    with pytest.raises(InvalidName, match="1-80 characters, none of them whitespace"):
        validate_execution_name(f"run{char}1")


@pytest.mark.parametrize("name", ["", "a" * 81])
def test_empty_and_over_long_names_are_refused(name):
    assert not is_execution_name(name)
