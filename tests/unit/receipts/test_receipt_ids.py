import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedding_ingest.exceptions import InvalidInputError, TerminalError
from embedding_ingest.receipts.exceptions import InvalidItemIdError
from embedding_ingest.receipts.ids import (
    MAX_IMAGE_ID_BYTES,
    ItemRef,
    line_item_id,
    parse_item_id,
    word_item_id,
)
from embedding_ingest.stores.records import ItemKind


def test_line_id_format():
    assert line_item_id("sroie-000", 1, 8) == "IMAGE#sroie-000#RECEIPT#00001#LINE#00008"


def test_word_id_format():
    assert word_item_id("sroie-000", 1, 8, 23) == "IMAGE#sroie-000#RECEIPT#00001#LINE#00008#WORD#00023"


def test_parse_line_and_word_ids():
    line = parse_item_id("IMAGE#sroie-042#RECEIPT#00002#LINE#00013")
    assert line == ItemRef("sroie-042", 2, 13)
    assert line.kind is ItemKind.LINE
    word = parse_item_id("IMAGE#sroie-042#RECEIPT#00002#LINE#00013#WORD#00099")
    assert word == ItemRef("sroie-042", 2, 13, 99)
    assert word.kind is ItemKind.WORD


image_ids = st.text(min_size=1, max_size=30).filter(lambda s: "#" not in s and s.strip())
numbers = st.integers(min_value=0, max_value=99_999)


@given(image_ids, numbers, numbers, st.none() | numbers)
def test_ids_round_trip(image_id, receipt, line, word):
    ref = ItemRef(image_id, receipt, line, word)
    assert parse_item_id(ref.item_id) == ref


def test_ids_sort_in_receipt_line_word_order():
    ids = [word_item_id("a", 1, 2, 10), word_item_id("a", 1, 10, 3), word_item_id("a", 1, 2, 9)]
    assert sorted(ids) == [word_item_id("a", 1, 2, 9), word_item_id("a", 1, 2, 10),
                           word_item_id("a", 1, 10, 3)]


@pytest.mark.parametrize(
    ("args", "component", "problem"),
    [
        (("sroie#1", 1, 0), "image_id", "'#'"),
        (("", 1, 0), "image_id", "empty"),
        (("   ", 1, 0), "image_id", "empty"),
        (("sroie-1", -1, 0), "receipt_number", "negative"),
        (("sroie-1", 1, -5), "line_id", "negative"),
        (("sroie-1", 1, 100_000), "line_id", "five digits"),
        (("sroie-1", 1, True), "line_id", "integer"),
        (("sroie-1", "1", 0), "receipt_number", "integer"),
    ],
)
def test_line_id_rejects_bad_component(args, component, problem):
    with pytest.raises(InvalidItemIdError) as caught:
        line_item_id(*args)
    assert caught.value.component == component
    assert component in str(caught.value) and problem in str(caught.value)


def test_word_id_rejects_negative_word():
    with pytest.raises(InvalidItemIdError, match="word_id") as caught:
        word_item_id("sroie-1", 1, 0, -1)
    assert caught.value.component == "word_id"


def test_rejection_is_a_terminal_invalid_input_error():
    with pytest.raises(InvalidInputError) as caught:
        line_item_id("a#b", 1, 1)
    assert isinstance(caught.value, TerminalError)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "IMAGE#a#RECEIPT#1#LINE#00001",  # receipt not five digits
        "IMAGE##RECEIPT#00001#LINE#00001",  # empty image id
        "IMAGE#a#RECEIPT#00001",  # no line
        "IMAGE#a#RECEIPT#00001#LINE#00001#WORD#",  # empty word
        "IMAGE#a#b#RECEIPT#00001#LINE#00001",  # '#' inside the image id
        "IMAGE#a#RECEIPT#00001#LINE#00001 ",  # trailing junk
        "image#a#RECEIPT#00001#LINE#00001",
    ],
)
def test_parse_rejects_malformed_ids(text):
    with pytest.raises(InvalidItemIdError) as caught:
        parse_item_id(text)
    assert caught.value.component in {"item_id", "image_id"}
    assert repr(text) in str(caught.value)


def test_the_longest_image_id_makes_a_word_id_of_exactly_the_dynamodb_sort_key_limit():
    longest = "é" * (MAX_IMAGE_ID_BYTES // 2)  # two bytes each in UTF-8: 491 characters, 982 bytes
    assert len(word_item_id(longest, 99_999, 99_999, 99_999).encode()) == 1024

    with pytest.raises(InvalidItemIdError, match="at most 982 bytes in UTF-8, got 983 bytes") as refused:
        line_item_id(longest + "x", 1, 1)  # the line's own id would fit: the word ids of its line would not
    assert len(str(refused.value.value)) < 40  # the message shows the start of the id, not all of it


def test_an_image_id_holding_an_unpaired_surrogate_is_refused():
    with pytest.raises(InvalidItemIdError, match="unpaired surrogate"):
        line_item_id("receipt-\ud800", 1, 1)
