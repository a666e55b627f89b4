"""Issue 23: the published snapshot answers the original system's readers' filters on living metadata
(labels, place, sections), the same ids through open_snapshot, a stock PersistentClient on a pulled
directory and a stock HttpClient on `snapshots serve`. The expected ids come from the input file.

Chroma 1.5.9's no-match cases are asserted too (`$in` on an array, `$contains` on a scalar key), so an
upgrade that changes them is noticed."""

from __future__ import annotations

import json

import chromadb
import pytest
from chroma_server import served
from chromadb.config import Settings as ChromaSettings
from pipeline import make_workspace, receipts_file

from embedding_ingest import open_snapshot
from embedding_ingest.receipts.ids import line_item_id, word_item_id
from embedding_ingest.snapshots.pull import pull_version
from embedding_ingest.stores.records import ItemKind

PHONE = "+60 3-2142 8888"
CORE = ["validated", "auto_suggested"]


def _label(name, status, **extra):
    return {"label": name, "status": status, **extra}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Three real receipts with a place, sections and labels, imported and published (lines, words).
    Returns the workspace and the expected ids of each reader query."""
    tmp = tmp_path_factory.mktemp("living")
    records = [json.loads(line) for line in receipts_file(tmp, 3).read_text().splitlines()]
    first, second, third = records
    first["place"] = {"merchant_name": "Acme Trading Sdn Bhd", "phone": PHONE, "address": " 1 jalan  ampang "}
    for line in first["lines"]:
        line["section"] = "header" if line["line_id"] < 3 else "items"
    word = {r["receipt_id"]: r["words"] for r in records}
    word[first["receipt_id"]][-1]["labels"] = [_label("GRAND_TOTAL", "validated", proposed_by="llm",
                                                      validated_at="2026-12-01T10:00:00Z")]
    word[first["receipt_id"]][2]["labels"] = [_label("DATE", "validated"), _label("GRAND_TOTAL", "invalid")]
    word[second["receipt_id"]][-1]["labels"] = [_label("GRAND_TOTAL", "validated")]
    word[second["receipt_id"]][0]["labels"] = [_label("DATE", "pending")]
    word[third["receipt_id"]][-1]["labels"] = [_label("GRAND_TOTAL", "invalid")]
    path = tmp / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    ws = make_workspace(tmp, dimensions=32)
    report = ws.import_receipts(path)
    assert report.items_skipped == 0 and report.receipts_imported == 3
    for kind in ItemKind:
        ws.submit(kind, max_items_per_batch=1000)
        assert ws.run_until_idle(kind)[-1].status.value == "SUCCEEDED"

    def wid(record, word):
        return word_item_id(record["receipt_id"], 1, word["line_id"], word["word_id"])

    def wid_of(record, index):
        return wid(record, record["words"][index])

    first_lines = {line_item_id(first["receipt_id"], 1, line["line_id"]) for line in first["lines"]}
    expected = {
        "grand_total_validated": {wid_of(first, -1), wid_of(second, -1)},
        "grand_total_invalid": {wid_of(first, 2), wid_of(third, -1)},
        "valid_date": {wid_of(first, 2)},
        "acme_core": {wid_of(first, -1), wid_of(first, 2)},
        "phone_lines": first_lines,
        "address_lines": first_lines,
        "documents_with_total": {line_item_id(r["receipt_id"], 1, line["line_id"])
                                 for r in records for line in r["lines"] if "TOTAL" in line["text"]},
        "header_lines": {line_item_id(first["receipt_id"], 1, n) for n in range(3)},
        # a line's valid_labels are its words' validated labels
        "lines_with_date": {line_item_id(first["receipt_id"], 1, first["words"][2]["line_id"])},
    }
    return ws, expected


QUERIES = {  # name -> (kind, where): the original readers' filters (issue 23)
    "grand_total_validated": ("words", {"$and": [{"label_status": "validated"},
                                                 {"label_GRAND_TOTAL": True}]}),
    "grand_total_invalid": ("words", {"label_GRAND_TOTAL": {"$eq": False}}),
    "valid_date": ("words", {"valid_labels": {"$contains": "DATE"}}),
    "acme_core": ("words", {"$and": [{"merchant_name": "Acme Trading Sdn Bhd"},
                                     {"label_status": {"$in": CORE}}]}),
    "phone_lines": ("lines", {"normalized_phone_10": "0321428888"}),
    "address_lines": ("lines", {"normalized_full_address": "1 JALAN AMPANG"}),
    # "anything whose document $contains a string" (where_document; case-sensitive substring)
    "documents_with_total": ("lines", {"$document": {"$contains": "TOTAL"}}),
    "header_lines": ("lines", {"section_label": "header"}),
    "lines_with_date": ("lines", {"valid_labels": {"$contains": "DATE"}}),
    # Chroma 1.5.9 semantics readers must know (README): $in never matches an array, and metadata
    # $contains is for arrays only
    "array_in_matches_nothing": ("words", {"valid_labels": {"$in": ["DATE"]}}),
    "scalar_contains_matches_nothing": ("words", {"merchant_name": {"$contains": "Acme Trading Sdn Bhd"}}),
}


def _ask(collection, where, vector):
    """The ids a filtered nearest-neighbour query (n_results 10, as the label validator asks) and a
    filtered get return; both must agree. {"$document": F} stands for where_document=F."""
    filters = {"where_document": where["$document"]} if "$document" in where else {"where": where}
    near = collection.query(query_embeddings=[vector], n_results=10, include=[], **filters)["ids"][0] \
        if collection.count() else []
    every = collection.get(include=[], **filters)["ids"]
    assert set(near) <= set(every) and (len(near) == 10 or set(near) == set(every)), where
    return set(every)


def test_reader_filters_give_the_same_ids_in_open_snapshot_pulled_and_served_chroma(labelled, tmp_path):
    ws, expected = labelled
    expected = {**expected, "array_in_matches_nothing": set(), "scalar_contains_matches_nothing": set()}
    answers: dict[str, dict[str, set[str]]] = {}
    vectors = {}
    for database in ("lines", "words"):
        with open_snapshot(database, settings=ws.settings) as snap:
            vectors[database] = snap.get(limit=1, include=["embeddings"])["embeddings"][0]
            for name, (kind, where) in QUERIES.items():
                if kind == database:
                    answers.setdefault("open_snapshot", {})[name] = _ask(snap, where, vectors[database])
            # metadata comes back as written: arrays as lists
            acme_total = {"$and": [{"label_GRAND_TOTAL": True}, {"merchant_name": "Acme Trading Sdn Bhd"}]}
            (hit,) = snap.get(where=acme_total, include=["metadatas"])["metadatas"] \
                if database == "words" else [None]
            if hit is not None:
                assert hit["valid_labels"] == ["GRAND_TOTAL"] and hit["label_proposed_by"] == "llm"
                assert hit["normalized_full_address"] == "1 JALAN AMPANG"

    for database, kind in (("lines", "line"), ("words", "word")):
        target = tmp_path / f"pulled-{database}"
        pull_version(ws.objects, ws.ledger, ws.settings, database, target)
        client = chromadb.PersistentClient(str(target), settings=ChromaSettings(anonymized_telemetry=False))
        try:
            collection = client.get_collection(database)
            for name, (of, where) in QUERIES.items():
                if of == database:
                    answers.setdefault("pulled", {})[name] = _ask(collection, where, vectors[database])
        finally:
            client.close()
        with served(ws.settings.home, kind, tmp_path / f"served-{database}") as http:
            collection = http.get_collection(database)
            for name, (of, where) in QUERIES.items():
                if of == database:
                    answers.setdefault("served", {})[name] = _ask(collection, where, vectors[database])

    for way, got in answers.items():
        assert got == expected, way
