"""Property tests of the importer over generated receipts with damaged items (issue 10): no exception
escapes it, every good item is imported with its normalised text, every damaged item is either
skipped with a reason naming it or (a box just outside the image) clamped and counted."""

from __future__ import annotations

import json
import tempfile
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from embedding_ingest.receipts.importer import import_receipts
from embedding_ingest.receipts.text import normalize_text
from embedding_ingest.stores.records import EmbeddingStatus, ItemKind
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

SIZE = 200  # image side in pixels; the 2% tolerance is 4 px
# damage -> (what it does to an item, whether the item is skipped (else clamped))
DAMAGES = {
    "blank": (lambda item: item.update(text=" \t "), True),
    "empty": (lambda item: item.update(text=""), True),
    "invisible": (lambda item: item.update(text="\u200b\ufeff\u2060"), True),
    "control_only": (lambda item: item.update(text="\x00\x07\x1b"), True),
    "lone_surrogate": (lambda item: item.update(text="\ud800"), True),
    "inverted_box": (lambda item: item.update(bbox=[item["bbox"][2], item["bbox"][1],
                                                   item["bbox"][0], item["bbox"][3]]), True),
    "far_outside": (lambda item: item.update(bbox=[item["bbox"][0], item["bbox"][1],
                                                  SIZE + 50, item["bbox"][3]]), True),
    "short_box": (lambda item: item.update(bbox=item["bbox"][:3]), True),
    "text_not_string": (lambda item: item.update(text=12), True),
    "just_outside": (lambda item: item.update(bbox=[-2, item["bbox"][1], item["bbox"][2],
                                                   item["bbox"][3]]), False),
}
good_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                    max_size=12).filter(lambda t: any(unicodedata.category(c)[0] in "LNPS" for c in t))


@st.composite
def damaged_receipts(draw):
    n = draw(st.integers(1, 5))
    lines, words = [], []
    for i in range(n):
        y = 10 + 30 * i
        lines.append({"line_id": i, "text": draw(good_text), "bbox": [10, y, 150, y + 20]})
        words.append({"word_id": i, "line_id": i, "text": draw(good_text), "bbox": [10, y, 60, y + 20]})
    damage = {}
    for kind, items in (("line", lines), ("word", words)):
        for index in draw(st.sets(st.integers(0, n - 1), max_size=n)):
            name = draw(st.sampled_from(sorted(DAMAGES)))
            DAMAGES[name][0](items[index])
            damage[(kind, index)] = name
    return {"receipt_id": "prop-1", "width": SIZE, "height": SIZE, "lines": lines, "words": words}, damage


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_receipts())
@example(({"receipt_id": "prop-1", "width": SIZE, "height": SIZE,
           "lines": [{"line_id": 0, "text": "TOTAL 12.00", "bbox": [10, 10, 150, 30]}],
           "words": [{"word_id": 0, "line_id": 0, "text": "TOTAL\ud83d", "bbox": [10, 10, 60, 30]}]}, {}))
def test_every_good_item_is_imported_and_every_damaged_one_skipped_with_a_reason(case):
    record, damage = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.jsonl"
        path.write_text(json.dumps(record, ensure_ascii=True) + "\n", encoding="utf-8")
        ledger = SqliteLedger(Path(tmp) / "ledger.sqlite3")
        try:
            report = import_receipts(path, ledger, model="m")  # never raises on bad data
            stored = {i.item_id: i.text for kind in ItemKind
                      for i in ledger.find_items(kind, EmbeddingStatus.NONE)}
        finally:
            ledger.close()

    assert report.errors == [] and report.receipts_imported == 1
    skipped = {(s.field.split("[")[0][:-1], int(s.field.split("[")[1].split("]")[0]))
               for s in report.skipped_items}
    expected_skips = {key for key, name in damage.items() if DAMAGES[name][1]}
    assert skipped == expected_skips, [s.message for s in report.skipped_items]
    assert all(s.problem and s.item for s in report.skipped_items), "every skip has its reason"
    assert report.boxes_clamped == sum(1 for name in damage.values() if not DAMAGES[name][1])
    for kind, items in (("line", record["lines"]), ("word", record["words"])):
        for index, item in enumerate(items):
            if (kind, index) in expected_skips:
                continue
            suffix = (f"LINE#{item['line_id']:05d}" if kind == "line"
                      else f"LINE#{item['line_id']:05d}#WORD#{item['word_id']:05d}")
            item_id = f"IMAGE#prop-1#RECEIPT#00001#{suffix}"
            assert stored.get(item_id) == normalize_text(item["text"]), (kind, index)
