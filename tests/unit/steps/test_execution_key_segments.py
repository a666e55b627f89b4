"""Object-key segments of execution names: a run's batch_id is its execution name, and every valid name
(asl_local.names, StartExecution's rule) gets a segment that is safe in every object key."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asl_local.names import is_execution_name
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.steps.exceptions import StepInputError
from embedding_ingest.steps.keys import chunks_key, execution_key_segment, key_part

VALID = ["reçu-é", "日本", "_lead", "run(1)", ".hidden", "a..b", "x!'@=+", "line-20261129T160749-6c59cd4c",
         "a" * 80]


def test_key_safe_names_keep_their_layout_and_others_get_a_readable_hashed_segment():
    assert execution_key_segment("line-run-1") == "line-run-1"
    assert chunks_key("line-run-1") == "chunks/line-run-1/chunks.json"
    assert re.fullmatch(r"re_u-[0-9a-f]{16}", execution_key_segment("reçu-é"))
    assert re.fullmatch(r"lead-[0-9a-f]{16}", execution_key_segment("_lead"))
    assert re.fullmatch(r"x-[0-9a-f]{16}", execution_key_segment("日本"))
    assert re.fullmatch(r"run_1-[0-9a-f]{16}", execution_key_segment("run(1)"))
    assert len({execution_key_segment(n) for n in VALID}) == len(VALID)


valid_names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                      max_size=80).filter(is_execution_name)


@given(valid_names)
@example("reçu-é")
@example("..")
@example("run(1)")
def test_every_valid_name_becomes_a_stable_key_segment_that_is_a_key_part_itself(name):
    segment = execution_key_segment(name)
    assert segment == execution_key_segment(name) == key_part(name, "batch_id")
    assert key_part(segment, "batch_id") == segment  # idempotent: steps may pass it on
    assert "/" not in segment and ".." not in segment and segment.isascii()
    assert chunks_key(name).startswith("chunks/") and chunks_key(name).count("/") == 2


@pytest.mark.parametrize("value", ["../etc", "a/b", "a b", ""])
def test_a_string_that_is_no_execution_name_is_still_refused_as_a_key_part(value):
    with pytest.raises(StepInputError):
        key_part(value, "batch_id")


@pytest.mark.parametrize("value", ["a/b", "", "a b"])
def test_a_string_that_is_no_execution_name_gets_no_segment_and_the_error_names_the_rule(value):
    with pytest.raises(InvalidInputError, match="1-80 characters"):
        execution_key_segment(value)
