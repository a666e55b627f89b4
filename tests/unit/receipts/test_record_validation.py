"""Each kind of bad record is rejected with an error naming file line, receipt id and field, while the
good records of the same file still come through."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from receipt_builders import record

from embedding_ingest.receipts.exceptions import ReceiptFileError
from embedding_ingest.receipts.importer import read_receipts
from embedding_ingest.receipts.validation import CheckedRecord, check_record

GOOD_LINES = [("HELLO SHOP", (10, 10, 200, 40)), ("TOTAL 9.00", (10, 60, 200, 90))]
GOOD_WORDS = [(0, "HELLO", (10, 10, 90, 40)), (0, "SHOP", (100, 10, 200, 40)),
              (1, "TOTAL", (10, 60, 90, 90)), (1, "9.00", (100, 60, 200, 90))]


def good(receipt_id, **overrides):
    return record(GOOD_LINES, GOOD_WORDS, receipt_id=receipt_id, **overrides)


def broken(receipt_id, mutate):
    value = good(receipt_id)
    mutate(value)
    return value


def write(tmp_path, rows):
    path = tmp_path / "receipts.jsonl"
    path.write_bytes(b"".join(
        (row if isinstance(row, bytes) else json.dumps(row).encode()) + b"\n" for row in rows
    ))
    return path


def set_in(path, value):
    def mutate(record):
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def delete(*path):
    def mutate(record):
        target = record
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


# Record-level faults reject the whole record: (mutation, field named, words the problem must contain)
RECORD_CASES = [
    (set_in(["width"], 0), "width", "greater than 0"),
    (set_in(["height"], -5), "height", "greater than 0"),
    (set_in(["height"], "tall"), "height", "must be a number"),
    (delete("lines"), "lines", "required but missing"),
    (set_in(["words"], "HELLO"), "words", "must be a JSON array"),
    (set_in(["lines", 1, "line_id"], 0), "lines[1].line_id", "duplicate line_id 0"),
    (set_in(["words", 3, "word_id"], 1), "words[3].word_id", "duplicate word_id 1"),
    (set_in(["receipt_number"], -1), "receipt_number", "negative"),
    (set_in(["fields"], {"company": 12}), "fields.company", "must be a string"),
]


@pytest.mark.parametrize(("mutate", "field", "problem"), RECORD_CASES, ids=[case[1] for case in RECORD_CASES])
def test_bad_record_is_named_and_good_ones_survive(tmp_path, mutate, field, problem):
    path = write(tmp_path, [good("r-1"), broken("r-bad", mutate), good("r-3")])
    parse = read_receipts(path)
    assert [receipt.image_id for receipt in parse.receipts] == ["r-1", "r-3"]
    assert parse.rejected_records == 1
    first = parse.errors[0]
    assert (first.line_number, first.receipt_id, first.field) == (2, "r-bad", field)
    assert {(e.line_number, e.receipt_id) for e in parse.errors} == {(2, "r-bad")}
    assert problem in parse.errors[0].problem
    assert parse.errors[0].message.startswith(f"line 2 (receipt 'r-bad'): {field}: ")


# Item-level faults skip only that line or word: (mutation, field named, problem words, lines, words kept)
ITEM_CASES = [
    (set_in(["lines", 1, "bbox"], [10, 60, 200]), "lines[1].bbox", "4 numbers", 1, 4),
    (set_in(["words", 2, "bbox"], [10, 60, 90, 90, 5]), "words[2].bbox", "4 numbers", 2, 3),
    (set_in(["lines", 0, "bbox"], [10, "a", 200, 40]), "lines[0].bbox[1]", "number, got string \"a\"", 1, 4),
    (set_in(["lines", 0, "bbox"], [10, 10, True, 40]), "lines[0].bbox[2]", "number, got boolean true", 1, 4),
    (set_in(["lines", 0, "bbox"], "10,10,200,40"), "lines[0].bbox", "must be a JSON array", 1, 4),
    (set_in(["lines", 0, "bbox"], [200, 10, 10, 40]), "lines[0].bbox", "x0 (200) must be less than x1 (10)",
     1, 4),
    (set_in(["words", 1, "bbox"], [100, 40, 200, 40]), "words[1].bbox", "y0 (40) must be less than y1 (40)",
     2, 3),
    (set_in(["lines", 1, "bbox"], [10, 60, 1200, 90]), "lines[1].bbox", "outside the 1000x1000 image by more "
     "than 2% (x1 1200 > width 1000)", 1, 4),
    (set_in(["words", 0, "bbox"], [-30, 10, 90, 40]), "words[0].bbox", "x0 -30 < 0", 2, 3),
    (delete("lines", 0, "text"), "lines[0].text", "required but missing", 1, 4),
    (set_in(["lines", 0, "text"], "   "), "lines[0].text", "blank or invisible", 1, 4),
    (set_in(["lines", 0, "text"], "\u200b\ufeff\u2060"), "lines[0].text", "invisible", 1, 4),
    (set_in(["lines", 0, "text"], "\x00\x07"), "lines[0].text", "control", 1, 4),
    (set_in(["lines", 0, "text"], "\ud83d"), "lines[0].text", "cannot be encoded", 1, 4),
    (set_in(["words", 1, "text"], 7), "words[1].text", "must be a string, got integer 7", 2, 3),
    (set_in(["words", 3, "line_id"], 7), "words[3].line_id", "line_id 7, which no line", 2, 3),
    # a line whose id is unusable cannot be named by its words: they go too, each with its reason
    (set_in(["lines", 1, "line_id"], -3), "lines[1].line_id", "negative", 1, 2),
    (set_in(["lines", 1, "line_id"], "1"), "lines[1].line_id", "must be an integer", 1, 2),
    (set_in(["words", 0], "HELLO"), "words[0]", "must be a JSON object", 2, 3),
    # issue 23: living-metadata inputs are item-level too
    (set_in(["lines", 0, "section"], 3), "lines[0].section", "must be a string, got integer 3", 1, 4),
    (set_in(["lines", 0, "section"], "  "), "lines[0].section", "must not be blank", 1, 4),
    (set_in(["words", 2, "labels"], "TOTAL"), "words[2].labels", "must be a JSON array", 2, 3),
    (set_in(["words", 2, "labels"], [{"label": "total", "status": "validated"}]), "words[2].labels[0].label",
     "A-Z, 0-9 and _", 2, 3),
    (set_in(["words", 2, "labels"], [{"status": "validated"}]), "words[2].labels[0].label",
     "required but missing", 2, 3),
    (set_in(["words", 2, "labels"], [{"label": "TOTAL", "status": "ok"}]), "words[2].labels[0].status",
     "one of validated, invalid, pending, needs_review", 2, 3),
    (set_in(["words", 2, "labels"], [{"label": "TOTAL", "status": "validated", "validated_at": "yesterday"}]),
     "words[2].labels[0].validated_at", "ISO-8601", 2, 3),
    (set_in(["words", 2, "labels"], [{"label": "DATE", "status": "validated"},
                                     {"label": "DATE", "status": "invalid"}]),
     "words[2].labels[1].label", "given twice (also at words[2].labels[0])", 2, 3),
]


@pytest.mark.parametrize(("mutate", "field", "problem", "lines", "words"), ITEM_CASES,
                         ids=[case[1] + "-" + case[2][:20] for case in ITEM_CASES])
def test_a_bad_item_is_skipped_by_name_and_its_receipt_imported(tmp_path, mutate, field, problem, lines,
                                                                words):
    parse = read_receipts(write(tmp_path, [good("r-1"), broken("r-2", mutate)]))

    assert parse.errors == [] and [r.image_id for r in parse.receipts] == ["r-1", "r-2"]
    receipt = parse.receipts[1]
    assert (len(receipt.lines), len(receipt.words)) == (lines, words)
    assert len(parse.skipped_items) == 6 - lines - words, "every item left out has its reason"
    skipped = parse.skipped_items[0]
    assert (skipped.line_number, skipped.receipt_id, skipped.field) == (2, "r-2", field)
    assert problem in skipped.problem
    # words of a skipped line keep their place (and their line_id)
    assert {w.line_id for w in receipt.words} <= {0, 1}


def test_a_box_within_the_tolerance_is_clamped_and_reported(tmp_path):
    parse = read_receipts(write(tmp_path, [broken("r", set_in(["words", 0, "bbox"], [-1, 10, 90, 1015]))]))

    (receipt,) = parse.receipts
    box = receipt.words[0].bbox
    assert (box.x0, box.y0, box.x1, box.y1) == (0, 10, 90, 1000)
    (clamped,) = parse.clamped_boxes
    assert (clamped.field, clamped.original, clamped.clamped) == ("words[0].bbox", [-1, 10, 90, 1015],
                                                                  [0, 10, 90, 1000])
    assert parse.skipped_items == []


def test_text_is_normalised_once_nfc_surrogates_and_controls(tmp_path):
    def damage(value):
        value["lines"][0]["text"] = "CAFE\u0301\tT0TAL\x00\ud83d"
        value["words"][0]["text"] = "<|endoftext|>"
    (receipt,) = read_receipts(write(tmp_path, [broken("r", damage)])).receipts
    assert receipt.lines[0].text == "CAF\u00c9 T0TAL\ufffd"
    assert receipt.words[0].text == "<|endoftext|>", "special tokens are plain text"


def test_hash_in_receipt_id_is_rejected(tmp_path):
    parse = read_receipts(write(tmp_path, [good("a#b"), good("ok")]))
    assert [r.image_id for r in parse.receipts] == ["ok"]
    (error,) = parse.errors
    assert (error.line_number, error.receipt_id, error.field) == (1, "a#b", "receipt_id")
    assert "'#'" in error.problem


def test_unreadable_records_are_named_by_line(tmp_path):
    rows = [good("r-1"), b"{not json", b"[1, 2]", b"\xff\xfe{}", {"width": 5}, good("r-6")]
    parse = read_receipts(write(tmp_path, rows))
    assert [r.image_id for r in parse.receipts] == ["r-1", "r-6"]
    by_line = {}
    for error in parse.errors:
        by_line.setdefault(error.line_number, []).append(error)
    assert sorted(by_line) == [2, 3, 4, 5]
    assert "not valid JSON" in by_line[2][0].problem and by_line[2][0].field == "<record>"
    assert "JSON object, got array" in by_line[3][0].problem
    assert "UTF-8" in by_line[4][0].problem
    assert {e.field for e in by_line[5]} == {"receipt_id", "height", "lines", "words"}
    assert all(e.receipt_id is None for e in parse.errors)
    assert parse.records_read == 6 and parse.rejected_records == 4


def test_every_problem_of_a_record_is_reported(tmp_path):
    def many(value):
        value["lines"][1]["line_id"] = 0
        value["words"][1]["word_id"] = 0
        value["lines"][0]["bbox"] = [5, 5, 1, 1]  # an item fault: not reported while the record fails
    parse = read_receipts(write(tmp_path, [broken("r", many)]))
    fields = [e.field for e in parse.errors]
    assert fields == ["lines[1].line_id", "words[1].word_id"]
    assert parse.skipped_items == []


def test_duplicate_receipt_id_with_different_content_is_rejected(tmp_path):
    changed = good("r-1")
    changed["lines"][0]["text"] = "OTHER SHOP"
    parse = read_receipts(write(tmp_path, [good("r-1"), changed, good("r-1"), good("r-1", receipt_number=2)]))
    assert [(r.image_id, r.receipt_number) for r in parse.receipts] == [("r-1", 1), ("r-1", 2)]
    assert parse.receipts[0].lines[0].text == "HELLO SHOP"  # the first one is kept
    (error,) = parse.errors
    assert (error.line_number, error.receipt_id, error.field) == (2, "r-1", "receipt_id")
    assert "line 1" in error.problem and "different content" in error.problem
    assert parse.duplicate_records == 1  # the exact repeat on line 3 is skipped, not an error


def test_blank_lines_and_bom_are_tolerated(tmp_path):
    path = tmp_path / "r.jsonl"
    a, b = (json.dumps(good(name)).encode() for name in "ab")
    path.write_bytes(b"\xef\xbb\xbf" + a + b"\n\n  \n" + b)
    parse = read_receipts(path)
    assert [r.image_id for r in parse.receipts] == ["a", "b"] and parse.errors == []
    assert parse.records_read == 2


def test_receipt_number_defaults_to_one_and_can_be_given(tmp_path):
    rows = [good("a"), good("b", receipt_number=3), good("c", receipt_number=None)]
    parse = read_receipts(write(tmp_path, rows))
    assert [r.receipt_number for r in parse.receipts] == [1, 3, 1]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ReceiptFileError, match="nope.jsonl"):
        read_receipts(tmp_path / "nope.jsonl")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
record_keys = st.sampled_from(["receipt_id", "receipt_number", "width", "height", "lines", "words", "fields"])
item_keys = st.sampled_from(["line_id", "word_id", "text", "bbox"])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_no_record_crashes_validation(data):
    """Whatever a record holds, validation answers with a Receipt or with named errors, never raises."""
    value = good("fuzz")
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(["record", "line", "word"]))
        if where == "record":
            value[data.draw(record_keys)] = data.draw(json_values)
        else:
            items = value["lines"] if where == "line" else value["words"]
            if isinstance(items, list) and items and isinstance(items[0], dict):
                items[0][data.draw(item_keys)] = data.draw(json_values | st.lists(st.floats(), max_size=5))
    outcome = check_record(value, line_number=9)
    if isinstance(outcome, CheckedRecord):
        assert all(s.line_number == 9 and s.field and s.problem for s in outcome.skipped)
    else:
        assert outcome and all(e.line_number == 9 and e.field and e.problem for e in outcome)


def test_place_section_and_labels_are_read_and_a_bad_place_part_is_left_out(tmp_path):
    labels = [{"label": "GRAND_TOTAL", "status": "validated", "proposed_by": "llm",
               "validated_at": "2026-12-01T10:00:00Z"}, {"label": "AMOUNT", "status": "invalid"}]
    value = good("r-1", place={"merchant_name": "Hello Shop Sdn Bhd", "phone": 60312345678,
                               "address": "1 Jalan  Ampang", "website": "   "})
    value["lines"][1]["section"] = "totals"
    value["words"][3]["labels"] = labels
    parse = read_receipts(write(tmp_path, [value]))

    (receipt,) = parse.receipts
    assert receipt.place.merchant_name == receipt.merchant_name == "Hello Shop Sdn Bhd"
    place = receipt.place
    assert (place.phone, place.address, place.website) == (None, "1 Jalan  Ampang", None)
    assert [line.section for line in receipt.lines] == [None, "totals"]
    assert [label.label for label in receipt.words[3].labels] == ["GRAND_TOTAL", "AMOUNT"]
    (skipped,) = parse.skipped_items  # the phone part only: the receipt and its items stay whole
    assert (skipped.item, skipped.field) == ("place", "place.phone")
    assert skipped.message == ("line 1 (receipt 'r-1'): place.phone: must be a string, got integer "
                               "60312345678; left out")
    assert (len(receipt.lines), len(receipt.words)) == (2, 4)
