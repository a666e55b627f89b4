"""Import, row grouping and context text on the real SROIE receipts."""

import json

import pytest

from embedding_ingest.receipts.context import EDGE, line_contexts, line_rows, word_contexts, word_rows
from embedding_ingest.receipts.ids import parse_item_id
from embedding_ingest.receipts.importer import build_items, read_receipts
from embedding_ingest.stores.records import EmbeddingStatus, ItemKind


def test_every_real_receipt_passes_validation(sroie, sroie_path):
    raw = [json.loads(record) for record in sroie_path.read_text(encoding="utf-8").splitlines()]
    # The test file's known size (README and bench quote it), checked against the raw records too.
    assert (len(raw), sum(len(r["lines"]) for r in raw), sum(len(r["words"]) for r in raw)) == (
        400, 22_227, 47_150)
    assert sroie.errors == []
    assert (sroie.records_read, len(sroie.receipts)) == (400, 400)
    assert [r.image_id for r in sroie.receipts] == [r["receipt_id"] for r in raw]
    assert [len(r.lines) for r in sroie.receipts] == [len(r["lines"]) for r in raw]
    assert [len(r.words) for r in sroie.receipts] == [len(r["words"]) for r in raw]


def test_date_label_and_value_share_a_row(sroie_by_id):
    rows = [[line.text for line in row] for row in line_rows(sroie_by_id["sroie-000"].lines)]
    assert ["DATE:", "25/12/2018 8:13:39 PM"] in rows
    assert ["CASHIER:", "MANIS"] in rows
    assert rows[0] == ["TAN WOON YANN"]  # the top of the receipt comes first


def test_line_context_on_a_real_receipt(sroie_by_id):
    contexts = line_contexts(sroie_by_id["sroie-000"])
    assert contexts[8] == "DOCUMENT NO : TD01167104\nDATE:\nCASHIER: MANIS"
    assert contexts[9] == "DOCUMENT NO : TD01167104\n25/12/2018 8:13:39 PM\nCASHIER: MANIS"
    assert contexts[0] == f"{EDGE}\nTAN WOON YANN\nBOOK TA .K(TAMAN DAYA) SDN BND"


def test_word_context_on_a_real_receipt(sroie_by_id):
    receipt = sroie_by_id["sroie-000"]
    contexts = word_contexts(receipt)
    rendered = {w.text: contexts[w.word_id].embed_text(w.text) for w in receipt.words if w.line_id in (8, 9)}
    # words of two OCR lines ("DATE:" and the timestamp) are neighbours on the same printed row
    assert rendered == {
        "DATE:": f"{EDGE} {EDGE} DATE: 25/12/2018 8:13:39",
        "25/12/2018": f"{EDGE} DATE: 25/12/2018 8:13:39 PM",
        "8:13:39": f"DATE: 25/12/2018 8:13:39 PM {EDGE}",
        "PM": f"25/12/2018 8:13:39 PM {EDGE} {EDGE}",
    }


def test_rows_partition_every_real_receipt(sroie):
    for receipt in sroie.receipts:
        line_ids = [line.line_id for row in line_rows(receipt.lines) for line in row]
        assert sorted(line_ids) == sorted(line.line_id for line in receipt.lines), receipt.image_id
        word_ids = [word.word_id for row in word_rows(receipt.words) for word in row]
        assert sorted(word_ids) == sorted(word.word_id for word in receipt.words), receipt.image_id


def test_items_of_a_real_receipt(sroie_by_id):
    receipt = sroie_by_id["sroie-000"]
    items = {item.item_id: item for item in build_items(receipt)}
    assert len(items) == len(receipt.lines) + len(receipt.words)

    date = items["IMAGE#sroie-000#RECEIPT#00001#LINE#00008"]
    assert (date.kind, date.text, date.line_id, date.word_id) == (ItemKind.LINE, "DATE:", 8, None)
    assert date.embed_text == "DOCUMENT NO : TD01167104\nDATE:\nCASHIER: MANIS"
    assert date.embedding_status is EmbeddingStatus.NONE
    # bbox [50, 372, 96, 390] on a 463 x 1013 image; y measured up from the bottom
    assert date.metadata == {
        "image_id": "sroie-000", "receipt_id": 1, "line_id": 8, "text": "DATE:",
        "x": pytest.approx(50 / 463), "y": pytest.approx(1 - 390 / 1013),
        "width": pytest.approx(46 / 463), "height": pytest.approx(18 / 1013),
        "merchant_name": "BOOK TA .K (TAMAN DAYA) SDN BHD", "source": "sroie2019-task1-train",
        # issue 23: without a place, the labelled address is the one readers match on
        "normalized_full_address": "NO.53 55,57 & 59, JALAN SAGU 18, TAMAN DAYA, 81100 JOHOR BAHRU, JOHOR.",
    }

    words = [item for item in items.values() if item.kind is ItemKind.WORD and item.line_id == 9]
    assert [w.text for w in words] == ["25/12/2018", "8:13:39", "PM"]
    first = words[0]
    assert first.item_id == "IMAGE#sroie-000#RECEIPT#00001#LINE#00009#WORD#" + f"{first.word_id:05d}"
    assert first.embed_text == f"{EDGE} DATE: 25/12/2018 8:13:39 PM"
    assert (first.metadata["left"], first.metadata["right"]) == ("DATE:", "8:13:39")
    assert words[-1].metadata["right"] == EDGE
    assert first.metadata["word_id"] == first.word_id and first.metadata["line_id"] == 9


def test_all_real_items_have_unique_parseable_ids_and_chroma_safe_metadata(sroie):
    seen = set()
    for receipt in sroie.receipts:
        for item in build_items(receipt):
            assert item.item_id not in seen
            seen.add(item.item_id)
            ref = parse_item_id(item.item_id)
            assert (ref.image_id, ref.line_id, ref.word_id) == (item.image_id, item.line_id, item.word_id)
            assert all(value is not None for value in item.metadata.values())
            assert 0 <= item.metadata["y"] <= 1 and 0 <= item.metadata["x"] <= 1
            assert item.embed_text.count("\n") == (2 if item.kind is ItemKind.LINE else 0)
    assert len(seen) == 22_227 + 47_150


def test_unknown_merchant_is_left_out_not_nulled(sroie_path, tmp_path):
    with sroie_path.open("rb") as source:
        record = json.loads(next(source))
    record["fields"]["company"] = None
    path = tmp_path / "no-merchant.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (receipt,) = read_receipts(path).receipts
    items = build_items(receipt)
    assert items and all("merchant_name" not in item.metadata for item in items)
    assert all(item.metadata["source"] == "sroie2019-task1-train" for item in items)


def test_real_items_are_accepted_by_chroma(sroie_by_id, tmp_path):
    """Chroma refuses None metadata: every item of a real receipt must store and filter as written."""
    import chromadb
    import numpy as np

    items = build_items(sroie_by_id["sroie-000"])
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    try:
        collection = client.create_collection("words", embedding_function=None)
        vectors = np.random.default_rng(0).random((len(items), 8), dtype=np.float32)
        collection.add(ids=[i.item_id for i in items], embeddings=vectors,
                       metadatas=[i.metadata for i in items], documents=[i.text for i in items])
        found = collection.get(where={"$and": [{"line_id": 9}, {"left": "DATE:"}]})
        assert found["documents"] == ["25/12/2018"]
        assert found["metadatas"][0]["merchant_name"] == "BOOK TA .K (TAMAN DAYA) SDN BHD"
    finally:
        client.close()
