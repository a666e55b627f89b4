"""The Chroma SQLite reader (snapshots/chroma_sqlite.py) answers exactly as Chroma's own `collection.get()`
does, on directories the installed chromadb writes (several collections sharing ids, deleted ids,
updated records, metadata of every type, documents), and refuses what it was not written for; and its
one write (living metadata, issue 23) reads back as Chroma's own update."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import chromadb
import numpy as np
import pytest

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import chroma_io
from embedding_ingest.snapshots.chroma_sqlite import (
    DB_FILE,
    SUPPORTED_CHROMADB,
    StoredRecords,
    integrity_problem,
    stored_count,
)
from embedding_ingest.snapshots.exceptions import ChromaFormatError

DIMS = 8
NEVER_WRITTEN = ["nobody", "line-99999", ""]


def _vectors(rng: np.random.Generator, n: int) -> list[list[float]]:
    return rng.normal(size=(n, DIMS)).astype(np.float32).tolist()


def _metadata(n: int) -> dict | None:
    """Every metadata type Chroma stores: str, int, float, bool, string/int/float/bool lists; some
    records have no revision, one a non-string revision, some no metadata at all."""
    if n % 17 == 0:
        return None
    meta: dict = {"revision": f"{1700000000 + n:020.6f}#batch-{n % 7}", "receipt_id": n // 10,
                  "score": n / 7, "is_total": n % 2 == 0, "merchant_name": f"SHOP {n % 5}"}
    if n % 3 == 0:
        meta["tags"] = [f"t{n % 4}", "all"]
        meta["numbers"] = [n, n + 1]
        meta["ratios"] = [n / 3, 0.5]
        meta["flags"] = [True, n % 2 == 1]
    if n % 11 == 0:
        del meta["revision"]
    if n % 13 == 0:
        meta["revision"] = n  # not a string: no revision for the reader, as for record_revision
    return meta


def _write_lines(collection, rng: np.random.Generator, ids: list[str]) -> None:
    numbers = [int(i.rsplit("-", 1)[1]) for i in ids]
    for start in range(0, len(ids), 250):
        chunk = slice(start, start + 250)
        collection.upsert(ids=ids[chunk], embeddings=_vectors(rng, len(ids[chunk])),
                          metadatas=[_metadata(n) for n in numbers[chunk]],
                          documents=[None if n % 19 == 0 else f"text of {n}" for n in numbers[chunk]])


def _build(root: Path) -> tuple[Path, list[str]]:
    """A directory with four collections written over two client sessions; returns it and every id
    ever written to any of them."""
    rng = np.random.default_rng(7)
    persist = root / "several"
    line_ids = [f"line-{n:05d}" for n in range(1200)]  # more than one statement's worth (500)
    with chroma_io.open_client(persist) as client:
        lines = chroma_io.create_collection(client, "lines", "quality")
        _write_lines(lines, rng, line_ids)
        words = chroma_io.create_collection(client, "words", "cheap")
        # The same ids as lines, other revisions: only a collection filter tells them apart.
        words.upsert(ids=line_ids[:300], embeddings=_vectors(rng, 300),
                     metadatas=[{"revision": f"words-{n}"} for n in range(300)],
                     documents=[f"word {n}" for n in range(300)])
        client.create_collection("stock-default", embedding_function=None).upsert(
            ids=["line-00001", "other"], embeddings=_vectors(rng, 2))
        chroma_io.create_collection(client, "empty", "cheap")
        del lines, words
    with chroma_io.open_client(persist) as client:  # a second session: deletions and updates
        lines = chroma_io.get_collection(client, "lines")
        lines.delete(ids=line_ids[100:400:3] + ["line-01199"])
        lines.upsert(ids=["line-00010", "line-00100"],  # updated, and deleted then written again
                     embeddings=_vectors(rng, 2), metadatas=[{"revision": "r-new"}, {"revision": "r-back"}],
                     documents=["new text", "back again"])
        lines.update(ids=["line-00020", "line-00021"],
                     metadatas=[{"revision": "r-meta-only"}, {"score": 9.5}])
        lines.update(ids=["line-00022"], metadatas=[{"revision": None}])  # removes the key
        lines.update(ids=["line-00023"], documents=["new document"], embeddings=_vectors(rng, 1))
        client.get_collection("words", embedding_function=None).delete(ids=line_ids[:50])
        del lines
    return persist, line_ids + ["other"]


@pytest.fixture(scope="module")
def several(tmp_path_factory) -> tuple[Path, list[str]]:
    return _build(tmp_path_factory.mktemp("chroma"))


def _as_chroma_answers(persist: Path, name: str) -> tuple[int, dict[str, dict]]:
    with chroma_io.open_client(persist) as client:
        collection = client.get_collection(name, embedding_function=None)
        got = collection.get(include=["metadatas"])
        count = collection.count()
        del collection
    return count, {item_id: dict(meta or {})
                   for item_id, meta in zip(got["ids"], got["metadatas"], strict=True)}


@pytest.mark.parametrize("name", ["lines", "words", "stock-default", "empty"])
def test_the_reader_answers_as_chromas_get(several, name):
    persist, written = several
    keys = ["revision", "merchant_name", "receipt_id", "score", "is_total", "tags", "no-such-key"]
    candidates = written + NEVER_WRITTEN
    random.Random(name).shuffle(candidates)
    with StoredRecords(persist, name) as records:
        count = records.count()
        by_key = {key: records.revisions(candidates, key) for key in keys}
        every = list(records.all_revisions())

    chroma_count, metadatas = _as_chroma_answers(persist, name)
    assert count == chroma_count == len(metadatas)
    assert {"empty": 0, "stock-default": 2, "words": 250}.get(name, count) == count
    for key in keys:
        expected = {item_id: meta[key] if isinstance(meta.get(key), str) else ""
                    for item_id, meta in metadatas.items()}
        assert by_key[key] == expected, key
    assert every == sorted(by_key["revision"].items())  # all of them, in id order (the id index's input)
    assert stored_count(persist, name) == chroma_count


def _typed(meta: dict | None) -> str | None:
    """A metadata dict with its values' types showing (True and 1 compare equal in Python)."""
    return None if meta is None else repr(sorted(meta.items()))


@pytest.mark.parametrize("name", ["lines", "words", "stock-default", "empty"])
def test_records_reads_documents_and_metadata_as_chromas_get(several, name):
    """What open_snapshot reads for a query's winners: every type, lists in order, no metadata, no
    document, deleted and updated records, ids asked twice or never written."""
    persist, written = several
    candidates = written + NEVER_WRITTEN + written[:5]
    random.Random(name).shuffle(candidates)
    with StoredRecords(persist, name) as records:
        got = records.records(candidates)
    with chroma_io.open_client(persist) as client:
        expected = client.get_collection(name, embedding_function=None).get(
            ids=written, include=["documents", "metadatas"])
    assert {i: (d, _typed(m)) for i, (d, m) in got.items()} == {
        i: (d, _typed(m)) for i, d, m in zip(expected["ids"], expected["documents"], expected["metadatas"],
                                             strict=True)}
    if name == "lines":  # the cases are really there
        assert got["line-00003"][1]["tags"] == ["t3", "all"] and got["line-00017"][1] is None
        assert got["line-00019"][0] is None and got["line-00023"][0] == "new document"


def test_the_reader_sees_each_update_and_deletion(several):
    """The cases the contract test covers are really there (so it cannot pass vacuously)."""
    persist, _ = several
    with StoredRecords(persist, "lines") as records:
        got = records.revisions(["line-00010", "line-00100", "line-00103", "line-00020", "line-00022",
                                 "line-00011", "line-00013", "line-01199"])
    assert got == {"line-00010": "r-new", "line-00100": "r-back", "line-00020": "r-meta-only",
                   "line-00022": "", "line-00011": "", "line-00013": ""}


def test_a_directory_copied_and_changed_reads_as_its_own(several, tmp_path):
    """What publish does to a segment (metadata_update.rewrite_segment): copy it, delete ids through
    Chroma."""
    persist, _ = several
    copy = tmp_path / "copy"
    shutil.copytree(persist, copy)
    with chroma_io.open_client(copy) as client:
        client.get_collection("lines", embedding_function=None).delete(ids=["line-00000", "line-00001"])
    with StoredRecords(copy, "lines") as records, StoredRecords(persist, "lines") as original:
        assert records.count() == original.count() - 2
        assert records.revisions(["line-00000", "line-00001", "line-00002"]) == {
            "line-00002": original.revisions(["line-00002"])["line-00002"]}
    assert _as_chroma_answers(copy, "lines")[0] == stored_count(copy, "lines")


# -- the guard ------------------------------------------------------------------------------------
def _tampered(several, tmp_path: Path, *statements: str) -> Path:
    persist, _ = several
    copy = tmp_path / "tampered"
    shutil.copytree(persist, copy)
    with sqlite3.connect(copy / DB_FILE) as db:
        for statement in statements:
            db.execute(statement)
    db.close()
    return copy


def _one_line(caught: pytest.ExceptionInfo) -> str:
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_another_chromadb_is_refused_naming_both_versions(several, monkeypatch):
    persist, _ = several
    monkeypatch.setattr(chromadb, "__version__", "1.6.0")
    with pytest.raises(ChromaFormatError) as caught:
        StoredRecords(persist, "lines")
    message = _one_line(caught)
    assert "chromadb 1.6.0 is installed" in message and f"supports chromadb {SUPPORTED_CHROMADB}" in message


@pytest.mark.parametrize(("statement", "found"), [
    ("INSERT INTO migrations VALUES ('metadb', 7, '00007-future.sqlite.sql', 'SELECT 1', 'x')",
     "metadb 7"),
    ("DELETE FROM migrations WHERE dir = 'sysdb' AND version = 10", "sysdb 9"),
])
def test_another_migration_level_is_refused_naming_both(several, tmp_path, statement, found):
    copy = _tampered(several, tmp_path, statement)
    with pytest.raises(ChromaFormatError) as caught:
        stored_count(copy, "lines")
    message = _one_line(caught)
    assert found in message.split(";")[0]
    assert "supports embeddings_queue 2, metadb 6, sysdb 10 (chromadb 1.5.9)" in message


def test_a_missing_collection_or_segment_is_an_error_not_zero_records(several, tmp_path):
    persist, _ = several
    with pytest.raises(ChromaFormatError, match="0 collections named 'sentences'.*'lines'"):
        stored_count(persist, "sentences")
    copy = _tampered(several, tmp_path, "DELETE FROM segments WHERE scope = 'METADATA' AND collection = "
                                        "(SELECT id FROM collections WHERE name = 'lines')")
    with pytest.raises(ChromaFormatError, match="'lines' has 0 metadata segments"):
        stored_count(copy, "lines")
    assert stored_count(copy, "words") == 250  # the other collections still read
    with pytest.raises(ChromaFormatError, match="no chroma.sqlite3"):
        stored_count(tmp_path / "nothing-here", "lines")


def test_a_segment_behind_chromas_log_is_refused(several, tmp_path):
    lines_segment = ("SELECT s.id FROM segments s JOIN collections c ON s.collection = c.id "
                     "WHERE c.name = 'lines' AND s.scope = 'METADATA'")
    copy = _tampered(several, tmp_path,
                     f"UPDATE max_seq_id SET seq_id = seq_id - 1 WHERE segment_id = ({lines_segment})")
    with pytest.raises(ChromaFormatError, match="metadata segment of 'lines' applied Chroma's log up to"):
        stored_count(copy, "lines")


def test_sqlite_damage_is_named(several, tmp_path):
    persist, _ = several
    assert integrity_problem(persist) is None
    copy = tmp_path / "damaged"
    shutil.copytree(persist, copy)
    with sqlite3.connect(copy / DB_FILE) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'embeddings'").fetchone()[0]
    db.close()
    data = bytearray((copy / DB_FILE).read_bytes())
    data[(root - 1) * page_size + 7] = 50  # the page header's count of fragmented free bytes
    (copy / DB_FILE).write_bytes(bytes(data))
    problem = integrity_problem(copy)
    assert problem is not None and "quick_check" in problem and f"on page {root}" in problem
    assert "\n" not in problem


def test_living_metadata_written_in_sqlite_reads_as_chromas_own_update(several, tmp_path):
    """Issue 23's records-only repack: StoredRecords.replace_living gives the records exactly what
    Chroma's `update` (with dropped living keys sent as None) gives them, to `get`, `where` filters
    on scalars and arrays, `where_document` and a query; the other collections and the vector files
    are untouched."""
    from embedding_ingest.snapshots.metadata_update import update_metadata, vector_files

    persist, _ = several
    ids = sorted(_as_chroma_answers(persist, "lines")[1])[:700]  # more than one statement's worth
    labelled = {"label_status": "validated", "label_TOTAL": True, "label_DATE": False,
                "valid_labels": ["DATE", "TOTAL"], "invalid_labels": ["TAX"], "merchant_name": "NEW"}
    # labels added, merchant corrected, or every living key dropped (merchant_name goes)
    updates = {item_id: (3 + n % 2, [labelled, {"merchant_name": f"SHOP {n % 3}"}, {}][n % 3])
               for n, item_id in enumerate(ids)}
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    shutil.copytree(persist, ours)
    shutil.copytree(persist, theirs)
    with StoredRecords(ours, "lines", writable=True) as records:
        assert records.replace_living(updates) == len(ids)
    with chroma_io.open_client(theirs) as client:
        update_metadata(client.get_collection("lines", embedding_function=None), updates, 300)
    assert vector_files(ours) == vector_files(persist)

    def answers(root: Path) -> list:
        with chroma_io.open_client(root) as client:
            lines = client.get_collection("lines", embedding_function=None)
            got = [lines.get(include=["metadatas", "documents", "embeddings"]),
                   client.get_collection("words", embedding_function=None).get(include=["metadatas"])]
            got += [lines.get(where=where)["ids"] for where in (
                {"label_TOTAL": True}, {"label_DATE": False}, {"valid_labels": {"$contains": "DATE"}},
                {"merchant_name": "SHOP 1"}, {"metadata_version": 4},
                {"label_status": {"$in": ["validated"]}})]
            got.append(lines.get(where_document={"$contains": "text of 1"})["ids"])
            got.append(lines.query(query_embeddings=[[0.1] * DIMS], n_results=5,
                                   where={"label_TOTAL": True})["ids"])
            del lines
        return [{k: (np.asarray(v).tolist() if k == "embeddings" else v) for k, v in part.items()
                 if k in ("ids", "metadatas", "documents", "embeddings")} if isinstance(part, dict) else part
                for part in got]

    mine, chromas = answers(ours), answers(theirs)
    assert mine == chromas
    assert len(mine[2]) == len(ids[::3]) and mine[4]  # the filters found what was written

    # a value Chroma cannot hold is refused by id and key, and nothing is written (review finding 7)
    for bad in (None, {"nested": 1}, ["DATE", None]):
        with StoredRecords(ours, "lines", writable=True) as records, pytest.raises(
                InvalidInputError, match=rf"record '{ids[1]}': metadata 'valid_labels' is a "):
            records.replace_living({ids[0]: (9, labelled), ids[1]: (9, {**labelled, "valid_labels": bad})})
    assert answers(ours) == mine
