"""Living metadata (issue 23) as the original system's readers filter it: a table of inputs and the
keys each item publishes, and the hash that tells a metadata-only change from no change."""

import pytest
from receipt_builders import record

from embedding_ingest.living_keys import dropped_keys, metadata_hash
from embedding_ingest.receipts.importer import build_items
from embedding_ingest.receipts.living import (
    label_metadata,
    normalize_address,
    normalize_phone,
)
from embedding_ingest.receipts.models import WordLabel
from embedding_ingest.receipts.validation import validate_record


def label(name, status, **extra):
    return WordLabel(label=name, status=status, **extra)


@pytest.mark.parametrize(("phone", "expected"), [
    ("+1 (555) 010-2030", "5550102030"), ("2142 8888", None), ("03-2142 8888", "0321428888"),
    ("+60 3-2142 88881", "3214288881"),
    ("", None), (None, None), ("٣٣٣٣٣٣٣٣٣٣", None)])  # non-ASCII digits are not a dialable number
def test_phone_is_the_last_ten_digits(phone, expected):
    assert normalize_phone(phone) == expected


def test_address_is_upper_case_with_whitespace_collapsed():
    expected = "1, JALAN AMPANG 50450 KUALA LUMPUR"
    assert normalize_address(" 1, Jalan\tAmpang\n 50450  Kuala Lumpur ") == expected
    assert normalize_address("   ") is None


LABEL_TABLE = [
    ([], {}),
    ([label("DATE", "pending")], {"label_status": "pending"}),
    ([label("DATE", "needs_review")], {"label_status": "pending"}),
    ([label("TAX", "invalid")], {"label_status": "invalid", "label_TAX": False, "invalid_labels": ["TAX"]}),
    ([label("TAX", "invalid"), label("GRAND_TOTAL", "validated", proposed_by="llm",
                                     validated_at="2026-12-01T10:00:00Z"), label("AMOUNT", "validated")],
     {"label_status": "validated", "label_GRAND_TOTAL": True, "label_AMOUNT": True, "label_TAX": False,
      "valid_labels": ["AMOUNT", "GRAND_TOTAL"], "invalid_labels": ["TAX"], "label_proposed_by": "llm",
      "label_validated_at": "2026-12-01T10:00:00Z"}),
    # the latest validation of the deciding status names who proposed it and when
    ([label("A", "validated", proposed_by="x", validated_at="2026-01-01T00:00:00Z"),
      label("B", "validated", proposed_by="y", validated_at="2026-02-01T00:00:00Z"),
      label("C", "invalid", proposed_by="z", validated_at="2026-03-01T00:00:00Z")],
     {"label_status": "validated", "label_A": True, "label_B": True, "label_C": False,
      "valid_labels": ["A", "B"], "invalid_labels": ["C"], "label_proposed_by": "y",
      "label_validated_at": "2026-02-01T00:00:00Z"}),
]


@pytest.mark.parametrize(("labels", "expected"), LABEL_TABLE)
def test_label_keys(labels, expected):
    assert label_metadata(labels) == expected


def test_items_publish_place_section_and_labels():
    total = {"label": "GRAND_TOTAL", "status": "validated"}
    value = record([("HELLO SHOP", (10, 10, 200, 40)), ("TOTAL 9.00", (10, 60, 200, 90))],
                   [(0, "HELLO", (10, 10, 90, 40)), (1, "TOTAL", (10, 60, 90, 90)),
                    (1, "9.00", (100, 60, 200, 90))],
                   fields={"company": "hello shop", "address": "1 jalan  ampang"},
                   place={"merchant_name": "Hello Shop Sdn Bhd", "phone": "+60 3-2142 8888 1"})
    value["lines"][0]["section"], value["lines"][1]["section"] = "header", "totals"
    value["words"][1]["labels"] = [total]
    value["words"][2]["labels"] = [total, {"label": "DATE", "status": "invalid"}]
    labelled = validate_record(value, 1)
    items = {item.item_id.split("#RECEIPT#")[1]: item.metadata for item in build_items(labelled)}
    place = {"merchant_name": "Hello Shop Sdn Bhd", "normalized_phone_10": "3214288881",
             "normalized_full_address": "1 JALAN AMPANG"}
    for metadata in items.values():
        assert {k: metadata.get(k) for k in place} == place and "website" not in metadata
    header, totals = items["00001#LINE#00000"], items["00001#LINE#00001"]
    assert header["section_label"] == "header" and "valid_labels" not in header
    assert (totals["section_label"], totals["valid_labels"]) == ("totals", ["GRAND_TOTAL"])
    assert "label_status" not in items["00001#LINE#00000#WORD#00000"]
    word = items["00001#LINE#00001#WORD#00002"]
    assert (word["label_status"], word["label_GRAND_TOTAL"], word["label_DATE"]) == ("validated", True, False)


def test_metadata_hash_sees_living_keys_only():
    base = {"text": "TOTAL", "x": 0.1, "merchant_name": "A", "valid_labels": ["DATE"]}
    assert metadata_hash(base) == metadata_hash({**base, "text": "T0TAL", "x": 0.2})
    assert metadata_hash(base) != metadata_hash({**base, "merchant_name": "B"})
    assert metadata_hash(base) != metadata_hash({**base, "label_DATE": True})
    assert dropped_keys(base, {"merchant_name": "A"}) == ["valid_labels"]
