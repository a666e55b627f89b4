"""JSONPath evaluation, ResultPath placement and payload templates."""

from __future__ import annotations

import pytest

from asl_local.errors import StatesFailure
from asl_local.paths import (
    PathNotFound,
    apply_input_path,
    apply_result_path,
    reference_segments,
    select,
)
from asl_local.templates import evaluate_template

DATA = {"a": {"b": [10, 20, {"c": "deep"}]}, "odd key": 1,
        "items": [{"n": 1, "ok": True}, {"n": 2, "ok": False}]}


@pytest.mark.parametrize(("path", "value"), [
    ("$", DATA),
    ("$.a.b[1]", 20),
    ("$.a.b[2].c", "deep"),
    ("$['odd key']", 1),
    ("$.items[*].n", [1, 2]),
    ("$.items[?(@.ok == true)].n", [1]),
    ("$..c", ["deep"]),
])
def test_select_reference_and_general_paths(path, value):
    assert select(path, DATA) == value


@pytest.mark.parametrize("path", ["$.missing", "$.a.b[7]", "$.a.b.c", "$.items[0].n.x"])
def test_select_missing_reference_path_raises(path):
    with pytest.raises(PathNotFound):
        select(path, DATA)


def test_null_is_a_value_not_a_missing_key():
    assert select("$.key", {"key": None}) is None


def test_reference_segments_tell_reference_paths_from_general_ones():
    assert reference_segments("$.a['b c'][0]") == ("a", "b c", 0)
    assert reference_segments("$.a[*]") is None


def test_result_path_places_the_result_and_leaves_the_input_untouched():
    original = {"keep": 1, "nested": {"x": 1}}

    out = apply_result_path("$.nested.result", original, {"r": 2}, state="S")

    assert out == {"keep": 1, "nested": {"x": 1, "result": {"r": 2}}}
    assert original == {"keep": 1, "nested": {"x": 1}}
    assert apply_result_path("$.new.deeper", {}, 5, state="S") == {"new": {"deeper": 5}}
    assert apply_result_path(None, original, 5, state="S") is original
    assert apply_result_path("$", original, 5, state="S") == 5


def test_result_path_through_a_non_object_is_a_result_path_match_failure():
    with pytest.raises(StatesFailure) as failed:
        apply_result_path("$.keep.result", {"keep": 1}, 5, state="Merge")

    assert failed.value.error == "States.ResultPathMatchFailure"  # catchable, as on AWS
    assert "Merge" in failed.value.cause


def test_null_input_path_gives_an_empty_object():
    assert apply_input_path(None, {"a": 1}, {}, state="S") == {}


def test_template_resolves_paths_context_and_nested_objects_and_lists():
    template = {"x.$": "$.a.b[0]", "ctx.$": "$$.Execution.Name", "lit": [{"y.$": "$.odd key"}, 3],
                "nested": {"z.$": "$.items[0]"}}

    built = evaluate_template({"x.$": "$.a.b[0]", **template}, DATA, {"Execution": {"Name": "run"}},
                              state="S", field="Parameters")

    assert built == {"x": 10, "ctx": "run", "lit": [{"y": 1}, 3], "nested": {"z": {"n": 1, "ok": True}}}


def test_template_with_a_missing_path_names_the_field_and_path():
    with pytest.raises(StatesFailure) as failed:
        evaluate_template({"chunk.$": "$.chunked_data.chunks"}, {"chunked_data": {}}, {},
                          state="ProcessChunks", field="ItemSelector")

    assert failed.value.error == "States.Runtime"
    assert "'$.chunked_data.chunks'" in failed.value.cause and "'chunk.$'" in failed.value.cause
    assert "ProcessChunks" in failed.value.cause
