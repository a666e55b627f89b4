"""`open_snapshot`: a published, layered version read as one Chroma collection by other programs."""

from __future__ import annotations

import numpy as np
import pytest

import embedding_ingest
from embedding_ingest import open_snapshot
from embedding_ingest.consumer import search
from embedding_ingest.exceptions import ConfigurationError, InvalidInputError
from embedding_ingest.providers.encoder import HashedNgramEncoder
from embedding_ingest.snapshots import iter_published_pages, read_version
from embedding_ingest.snapshots.exceptions import ChromaFormatError, VersionNotFoundError


def _all_records(ws):
    version = ws.ledger.get_published("lines")
    pages = list(iter_published_pages(ws.objects, version, ws.settings))
    ids = [i for p in pages for i in p.ids]
    return ids, np.concatenate([p.embeddings for p in pages]), [m for p in pages for m in p.metadatas]


def _exact_nearest(ids, vectors, metadatas, query, n, keep=lambda m: True):
    """Brute-force cosine nearest neighbours, the ground truth for the merged result."""
    rows = [r for r, m in enumerate(metadatas) if keep(m)]
    sims = vectors[rows] @ query / (np.linalg.norm(vectors[rows], axis=1) * np.linalg.norm(query))
    order = np.argsort(1 - sims, kind="stable")[:n]
    return [ids[rows[r]] for r in order]


def test_query_texts_merge_segments_by_distance_like_one_exact_search(layered_workspace):
    ws = layered_workspace
    assert len(read_version(ws.objects, ws.ledger.get_published("lines")).segments) == 2
    ids, vectors, metadatas = _all_records(ws)
    with open_snapshot("lines", settings=ws.settings) as snap:
        assert snap.count() == len(ids)
        assert snap.model == "local-hash-ngram-v1" and snap.dimensions == 64
        got = snap.query(query_texts=["TOTAL", "CASH"], n_results=7)
    assert set(got) >= {"ids", "distances", "documents", "metadatas", "embeddings", "included"}
    assert got["embeddings"] is None and got["included"] == ["metadatas", "documents", "distances"]
    queries = HashedNgramEncoder(64).encode(["TOTAL", "CASH"])
    for q in range(2):
        assert got["ids"][q] == _exact_nearest(ids, vectors, metadatas, queries[q], 7)
        assert got["distances"][q] == sorted(got["distances"][q])
        assert len(got["documents"][q]) == len(got["metadatas"][q]) == 7
    # the ids come from both segments (a merge, not the first segment's answer)
    segment_of = {}
    for n, page_ids in enumerate(_segment_ids(ws)):
        segment_of.update(dict.fromkeys(page_ids, n))
    assert {segment_of[i] for q in got["ids"] for i in q} == {0, 1}


def _segment_ids(ws):
    from embedding_ingest.snapshots import version_segments
    from embedding_ingest.snapshots.flat import iter_pages

    version = ws.ledger.get_published("lines")
    return [[i for p in iter_pages(d, "lines") for i in p.ids]
            for d in version_segments(ws.objects, version, ws.settings)]


def test_where_filter_and_embeddings_and_get(layered_workspace):
    ws = layered_workspace
    ids, vectors, metadatas = _all_records(ws)
    receipt = metadatas[-1]["receipt_id"]
    query = vectors[3]
    with open_snapshot("line", home=ws.settings.home) as snap:
        got = snap.query(query_embeddings=[query.tolist()], n_results=5, where={"receipt_id": receipt},
                         include=["metadatas", "embeddings"])
        assert got["distances"] is None and got["documents"] is None
        assert got["ids"][0] == _exact_nearest(ids, vectors, metadatas, query, 5,
                                               keep=lambda m: m["receipt_id"] == receipt)
        assert all(m["receipt_id"] == receipt for m in got["metadatas"][0])
        assert got["embeddings"][0].shape == (5, 64)
        wanted = [ids[0], ids[-1], "no-such-id"]
        fetched = snap.get(ids=wanted, include=["documents"])
        assert sorted(fetched["ids"]) == sorted(ids[i] for i in (0, -1))
        assert len(snap.get(where={"receipt_id": receipt})["ids"]) == sum(
            m["receipt_id"] == receipt for m in metadatas)
        assert len(snap.get(limit=10, offset=len(ids) - 4)["ids"]) == 4


@pytest.mark.parametrize("failure", [ChromaFormatError, RuntimeError])
def test_a_segment_the_index_reader_refuses_is_asked_through_chroma(layered_workspace, monkeypatch,
                                                                    failure):
    """Unfiltered queries read the segments' index files themselves (consumer/search.py); a segment
    that reader refuses, or fails to load (here: every one), is asked through Chroma, with the same
    answer, on the first query and after."""
    ws = layered_workspace
    with open_snapshot("lines", settings=ws.settings) as snap:
        direct = snap.query(query_texts=["TOTAL", "CASH"], n_results=7)

    def refuse(path, *args, **kwargs):
        raise failure(f"{path}: not for this reader")

    monkeypatch.setattr(search, "VectorIndex", refuse)
    with open_snapshot("lines", settings=ws.settings) as snap:
        through_chroma = snap.query(query_texts=["TOTAL", "CASH"], n_results=7)
        assert snap.query(query_texts=["TOTAL", "CASH"], n_results=7)["ids"] == through_chroma["ids"]
    assert through_chroma["ids"] == direct["ids"]
    assert through_chroma["documents"] == direct["documents"]
    assert through_chroma["metadatas"] == direct["metadatas"]
    assert np.allclose(through_chroma["distances"], direct["distances"], atol=1e-5)


def test_pinned_version_refresh_and_wrong_inputs(layered_workspace):
    ws = layered_workspace
    versions = ws.ledger.list_versions("lines")
    older = versions[-1]
    with open_snapshot("lines", settings=ws.settings, version=older.version) as snap:
        assert (snap.version, snap.count()) == (older.version, older.count)
        assert snap.refresh() is False
    with open_snapshot("lines", settings=ws.settings) as snap:
        assert snap.version == versions[0].version and snap.refresh() is False
        with pytest.raises(InvalidInputError, match="shape"):
            snap.query(query_embeddings=[[0.1, 0.2]])
        with pytest.raises(InvalidInputError, match="exactly one"):
            snap.query()
        with pytest.raises(InvalidInputError, match="include"):
            snap.query(query_texts=["x"], include=["bogus"])
        with pytest.raises(InvalidInputError, match=r"where filter is not valid: .*\$bogus"):
            snap.query(query_texts=["x"], where={"receipt_id": {"$bogus": 1}})
        with pytest.raises(InvalidInputError, match=r"where_document filter is not valid: .*\$contain\b"):
            snap.get(where_document={"$contain": "TOTAL"})
    with pytest.raises(InvalidInputError, match="closed"):
        snap.count()
    with pytest.raises(VersionNotFoundError):
        open_snapshot("lines", settings=ws.settings, version="nope")
    with pytest.raises(InvalidInputError, match="kind"):
        open_snapshot("receipts", settings=ws.settings)


def test_an_empty_query_list_raises_for_texts_and_embeddings_alike(layered_workspace):
    # Chroma's Collection.query raises for an empty list of texts or embeddings; so does a Snapshot,
    # whichever input is empty, and before any segment is asked.
    with open_snapshot("lines", settings=layered_workspace.settings) as snap:
        dimensions = snap.embed(["x"]).shape[1]
        for empty in ({"query_texts": []}, {"query_texts": ()}, {"query_embeddings": []},
                      {"query_embeddings": np.zeros((0, dimensions), dtype=np.float32)}):
            with pytest.raises(InvalidInputError, match="is empty: give at least one"):
                snap.query(**empty)
        assert len(snap.query(query_texts=["TOTAL"], n_results=2)["ids"][0]) == 2  # still answers


def test_no_workspace_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="no embedding-ingest workspace"):
        open_snapshot("lines", home=tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_public_names():
    assert embedding_ingest.__all__ == ["Snapshot", "open_snapshot"]
    assert embedding_ingest.Snapshot.__name__ == "Snapshot"
