"""The HNSW index reader (snapshots/chroma_hnsw.py) answers Chroma's own queries, on directories the
installed chromadb writes: the index files alone (records Chroma has synced) give exactly Chroma's
neighbours and distances; records still in Chroma's log are searched exactly; deletions and updates
in the log are applied as Chroma applies them; and what the reader does not apply (an entry no chromadb
1.5.9 writes, an index hnswlib cannot load, a crafted label file) is refused in one line, so
open_snapshot falls back to Chroma's query for that segment."""

from __future__ import annotations

import gc
import hashlib
import pickle
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from embedding_ingest.consumer.results import merge_hits
from embedding_ingest.snapshots import chroma_hnsw, chroma_io
from embedding_ingest.snapshots.chroma_hnsw import VectorIndex
from embedding_ingest.snapshots.exceptions import ChromaFormatError

DIMS = 16
SYNCED = 2000  # two of Chroma's default sync_threshold (1,000): every record is in the index files


def _write(persist: Path, count: int, space: str, seed: int = 5) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, DIMS)).astype(np.float32)
    with chroma_io.open_client(persist) as client:
        collection = client.create_collection("lines", embedding_function=None,
                                              configuration={"hnsw": {"space": space}})
        for start in range(0, count, 500):
            collection.upsert(ids=[f"r-{n:05d}" for n in range(start, min(count, start + 500))],
                              embeddings=vectors[start:start + 500])
        del collection
    return vectors


def _chroma(persist: Path, queries: np.ndarray, n: int) -> dict:
    with chroma_io.open_client(persist) as client:
        got = client.get_collection("lines", embedding_function=None).query(
            query_embeddings=queries, n_results=n, include=["distances"])
    return got


def _index(persist: Path, space: str = "cosine") -> VectorIndex:
    return VectorIndex(persist, "lines", dimensions=DIMS, space=space, ef_search=100)


def _exact(vectors: np.ndarray, query: np.ndarray, space: str) -> np.ndarray:
    if space == "cosine":
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return 1 - unit @ (query / np.linalg.norm(query))
    if space == "ip":
        return 1 - vectors @ query
    return ((vectors - query) ** 2).sum(axis=1)


def _queries(vectors: np.ndarray, count: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    picked = vectors[rng.integers(0, len(vectors), size=count)]
    return (picked + rng.normal(size=picked.shape) * 0.3).astype(np.float32)


def test_synced_records_give_exactly_chromas_neighbours_and_distances(tmp_path):
    persist = tmp_path / "synced"
    vectors = _write(persist, SYNCED, "cosine")
    queries = _queries(vectors, 40)
    expected = _chroma(persist, queries, 10)
    index = _index(persist)
    assert index.count == SYNCED
    got = index.search(queries, 10)
    assert [[i for _, i in row] for row in got] == expected["ids"]
    assert np.allclose([[d for d, _ in row] for row in got], expected["distances"], atol=1e-6)


@pytest.mark.parametrize("space", ["cosine", "l2", "ip"])
def test_logged_records_are_searched_exactly_and_never_farther_than_chromas(tmp_path, space):
    persist = tmp_path / space
    vectors = _write(persist, 1345, space)  # 1,000 in the index files, 345 only in Chroma's log
    queries = np.concatenate([_queries(vectors, 30), vectors[[1001, 1200, 1344]]])
    expected = _chroma(persist, queries, 8)
    got = _index(persist, space).search(queries, 8)
    for q, row in enumerate(got):
        distances = [d for d, _ in row]
        assert distances == sorted(distances) and len(row) == 8
        truth = _exact(vectors, queries[q], space)
        assert np.allclose(distances, [truth[int(i[2:])] for _, i in row], atol=1e-4)
        assert distances[-1] <= expected["distances"][q][-1] + 1e-5  # as near as Chroma's, or nearer
    if space != "ip":  # (inner product: a longer vector can be nearer than the query's own)
        assert [row[0][1] for row in got[-3:]] == ["r-01001", "r-01200", "r-01344"]  # logged, found first


def test_merged_hits_of_two_indexes_are_capped_at_what_they_hold(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    _write(small, 3, "cosine", seed=1)
    _write(large, SYNCED, "cosine", seed=2)
    indexes = [_index(large), _index(small)]
    query = np.ones((1, DIMS), dtype=np.float32)
    [merged] = merge_hits([index.search(query, 5) for index in indexes], 1, 5)
    both = sorted([(d, i, 0) for d, i in indexes[0].search(query, 5)[0]] +
                  [(d, i, 1) for d, i in indexes[1].search(query, 5)[0]])[:5]
    assert merged == both
    assert len(indexes[1].search(query, 5)[0]) == 3


def _digests(persist: Path) -> dict[str, str]:
    return {str(f.relative_to(persist)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(persist.rglob("*")) if f.is_file() and f.name != "chroma.sqlite3"}


def test_deletions_and_updates_in_chromas_log_are_applied_as_chroma_applies_them(tmp_path):
    persist = tmp_path / "changed"
    vectors = _write(persist, 1200, "cosine")  # 1,000 in the index files, 200 in Chroma's log
    fresh = np.random.default_rng(9).normal(size=(3, DIMS)).astype(np.float32)
    with chroma_io.open_client(persist) as client:
        collection = client.get_collection("lines", embedding_function=None)
        collection.delete(ids=["r-00010", "r-01100"])  # an indexed record and a logged one
        collection.upsert(ids=["r-00020", "r-01150"], embeddings=fresh[:2])  # new vectors for both kinds
        collection.update(ids=["r-00030"], metadatas=[{"label": "TOTAL"}])  # metadata only
        collection.add(ids=["r-00040"], embeddings=fresh[2:])  # already held: Chroma keeps the old vector
        collection.update(ids=["no-such-id"], embeddings=fresh[2:])  # not held: Chroma ignores it
        del collection
    files = _digests(persist)
    queries = np.concatenate([_queries(vectors, 30), fresh, vectors[[10, 20, 40, 1100, 1150]]])
    expected = _chroma(persist, queries, 8)
    index = _index(persist)
    got = index.search(queries, 8)
    assert index.count == 1198
    assert [[i for _, i in row] for row in got] == expected["ids"]
    assert np.allclose([[d for d, _ in row] for row in got], expected["distances"], atol=1e-5)
    assert [row[0][1] for row in got[30:33]] == ["r-00020", "r-01150", expected["ids"][32][0]]
    assert got[35][0][1] == "r-00040" and not {"r-00010", "r-01100", "no-such-id"} & {
        i for row in got for _, i in row}
    del index
    gc.collect()
    assert _digests(persist) == files  # marking deletions touched this process's copy only


def test_a_log_entry_it_does_not_apply_is_refused_in_one_line(tmp_path):
    persist = tmp_path / "odd"
    _write(persist, 1200, "cosine")
    with sqlite3.connect(persist / "chroma.sqlite3") as db:  # what no chromadb 1.5.9 writes
        db.execute("UPDATE embeddings_queue SET encoding = 'INT8' WHERE id = 'r-01100'")
    db.close()
    with pytest.raises(ChromaFormatError) as caught:
        _index(persist)
    assert "\n" not in str(caught.value) and "(operation 2, id 'r-01100') this reader does not apply" \
        in str(caught.value)


def test_an_index_hnswlib_cannot_load_is_refused_in_one_line(tmp_path, monkeypatch):
    persist = tmp_path / "foreign"
    _write(persist, 1000, "cosine")

    class Foreign:  # nmslib's hnswlib installs the same module name, with another load_index
        def __init__(self, space, dim):
            pass

        def load_index(self, path, max_elements=0):
            pass

    monkeypatch.setattr(chroma_hnsw.hnswlib, "Index", Foreign)
    with pytest.raises(ChromaFormatError, match="hnswlib cannot load the index \\(TypeError: ") as caught:
        _index(persist)
    assert "\n" not in str(caught.value)


def test_a_label_file_of_other_types_is_refused(tmp_path):
    persist = tmp_path / "strings"
    _write(persist, 1000, "cosine")
    [mapping] = persist.glob("*/index_metadata.pickle")
    mapping.write_bytes(pickle.dumps({"label_to_id": {"1": "r-00000"}}))
    with pytest.raises(ChromaFormatError, match="label_to_id maps other than int labels to str ids"):
        _index(persist)


def test_a_label_file_that_would_run_code_is_refused(tmp_path):
    persist = tmp_path / "crafted"
    _write(persist, 1000, "cosine")
    [mapping] = persist.glob("*/index_metadata.pickle")
    mapping.write_bytes(pickle.dumps({"label_to_id": shutil.rmtree}))
    with pytest.raises(ChromaFormatError, match="shutil.rmtree; only plain data is read"):
        _index(persist)
