"""CloudWatch Logs filter patterns, on the examples of AWS's page (FilterAndPatternSyntax.html): the
same events, the same patterns, the matches the page lists."""

from __future__ import annotations

import json

import pytest

from embedding_ingest.stores.log_filter import InvalidFilterPatternError, compile_filter_pattern

MESSAGES = ["[ERROR 400] BAD REQUEST", "[ERROR 401] UNAUTHORIZED REQUEST", "[ERROR 419] MISSING ARGUMENTS",
            "[ERROR 420] INVALID ARGUMENTS", "[ERROR 500] INTERNAL SERVER ERROR", "[SUCCESS 200] AUTHORIZED"]

EVENT = json.dumps({"eventType": "UpdateTrail", "sourceIPAddress": "111.111.111.111",
                    "arrayKey": ["value", "another value"],
                    "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}], "SomeObject": None})
COMPOUND = json.dumps({"user": {"id": 1, "email": "John.Stiles@example.com"},
                       "users": [{"id": 2, "email": "John.Doe@example.com"},
                                 {"id": 3, "email": "Jane.Doe@example.com"}],
                       "actions": ["GET", "PUT", "DELETE"],
                       "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]]})


def matching(pattern: str) -> list[int]:
    matches = compile_filter_pattern(pattern)
    return [index for index, message in enumerate(MESSAGES) if matches(message)]


@pytest.mark.parametrize(("pattern", "expected"), [
    ("ERROR", [0, 1, 2, 3, 4]),
    ("ERROR ARGUMENTS", [2, 3]),
    ("?ERROR ?ARGUMENTS", [0, 1, 2, 3, 4]),
    ('"INTERNAL SERVER ERROR"', [4]),
    ("ERROR -ARGUMENTS", [0, 1, 4]),
    ('" "', [0, 1, 2, 3, 4, 5]),
    ("", [0, 1, 2, 3, 4, 5]),
    ("%AUTHORIZED%", [1, 5]),
    ("AUTHORIZED", [5]),  # a term is a whole word: UNAUTHORIZED is another word
    ("error", []),  # case-sensitive
])
def test_terms_phrases_and_regexes(pattern, expected):
    assert matching(pattern) == expected


@pytest.mark.parametrize(("pattern", "matches"), [
    ('{ $.eventType = "UpdateTrail" }', True),
    ("{ $.eventType = UpdateTrail }", True),
    ('{ $.eventType = "Update*" }', True),
    ('{ $.eventType != "UpdateTrail" }', False),
    ("{ $.sourceIPAddress != 123.123.* }", True),
    ("{ $.sourceIPAddress = 111.111.* }", True),
    ('{ $.arrayKey[0] = "value" }', True),
    ("{ $.objectList[1].id = 2 }", True),
    ("{ $.objectList[1].id > 1.5e0 }", True),
    ("{ $.objectList[1].id < 2 }", False),
    ("{ $.SomeObject IS NULL }", True),
    ("{ $.SomeOtherObject NOT EXISTS }", True),
    ("{ $.eventType NOT EXISTS }", False),
    ('{ $.arrayKey = "value" }', False),  # an array is no value node
    ("{ $.missing = 1 }", False),
])
def test_json_selectors_on_the_pages_example_event(pattern, matches):
    assert compile_filter_pattern(pattern)(EVENT) is matches


@pytest.mark.parametrize(("pattern", "matches"), [
    ('{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }', True),
    ('{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = "nonmatch" '
     '&& $.actions[2] = "nonmatch" }', True),
    ('{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = "nonmatch") '
     '&& $.actions[2] = "nonmatch" }', False),
    ('{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }', False),
])
def test_compound_expressions_keep_the_documented_precedence(pattern, matches):
    assert compile_filter_pattern(pattern)(COMPOUND) is matches


def test_a_json_pattern_matches_only_json_messages():
    matches = compile_filter_pattern('{ $.batch_id = "line-1" }')

    assert matches('{"batch_id": "line-1", "message": "step started"}')
    assert not matches("START RequestId: 1 Version: $LATEST")
    assert not matches('["line-1"]')


@pytest.mark.parametrize(("pattern", "why"), [
    ("{batch_id}", "no property selector"),
    ("{ $.a = 1", "must end with '}'"),
    ("{ $.a > abc }", "compares numbers"),
    ("{ $.a = }", "ends too early"),
    ("{ ($.a = 1 }", "not closed"),
    ("{ $.a IS MAYBE }", "IS takes NULL, TRUE or FALSE"),
    ('"unclosed', "unclosed quotation mark"),
    ("[w1=ERROR, w2]", "space-delimited"),
])
def test_patterns_cloudwatch_refuses_say_why(pattern, why):
    with pytest.raises(InvalidFilterPatternError) as refused:
        compile_filter_pattern(pattern)

    assert str(refused.value).startswith(f"Invalid filter pattern: {pattern!r} (")
    assert why in str(refused.value)
