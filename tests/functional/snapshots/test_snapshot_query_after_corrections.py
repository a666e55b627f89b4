"""open_snapshot after corrections (review of issue 21, findings 1 and 2): a publish that replaces a
record and relabels another rewrites segments through Chroma's delete/update, whose entries stay in
Chroma's log; the version's unfiltered queries still search every segment in this process
(consumer/search.py), with the answer Chroma's own query gives; and when the index reader refuses the
rewritten segment, Chroma answers for it alone, merged with the others' in-process answers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from chromadb.api.models.Collection import Collection
from snapshot_pages import DIMS

from embedding_ingest.consumer import search
from embedding_ingest.consumer.snapshot import Snapshot
from embedding_ingest.snapshots import (
    RecordPage,
    publish_next_version,
    read_version,
    version_segments,
    write_snapshot,
)
from embedding_ingest.snapshots.chroma_hnsw import VectorIndex
from embedding_ingest.snapshots.chroma_sqlite import StoredRecords
from embedding_ingest.snapshots.exceptions import ChromaFormatError
from embedding_ingest.snapshots.metadata_update import MetadataUpdates
from embedding_ingest.snapshots.revisions import revision_of
from embedding_ingest.stores.records import ItemKind

DB = "lines"
MODEL = "test-model-16"
R1, R2 = (revision_of(t, "batch") for t in (1000.0, 2000.0))


def _delta(store, name, ids, *, revision, seed, profile="quality", updates=None):
    vectors = np.random.default_rng(seed).standard_normal((len(ids), DIMS)).astype(np.float32)
    pages = [RecordPage(ids=list(ids), embeddings=vectors, documents=[f"{i} v{seed}" for i in ids],
                        metadatas=[{"revision": revision, "merchant_name": "Old"} for _ in ids])]
    prefix = f"{DB}/delta/{DB}/receipt_lines/{name}/"
    write_snapshot(store, prefix, pages, collection=DB, dimensions=DIMS, model=MODEL, profile=profile,
                   metadata_updates=updates)
    return prefix, vectors


def _answer(store, ledger, settings, queries, monkeypatch):
    """The version's answer to `queries`, and how many of its segments Chroma's own query was asked."""
    asked, real = [], Collection.query

    def counting(collection, *args, **kwargs):
        asked.append(collection)
        return real(collection, *args, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(Collection, "query", counting)
        with Snapshot(ItemKind.LINE, store=store, ledger=ledger, settings=settings) as snap:
            return snap.query(query_embeddings=queries, n_results=10), len(asked)


def test_after_a_replace_and_a_relabel_segments_are_searched_here_and_a_refused_one_alone_by_chroma(
        store, ledger, lease, settings, monkeypatch, caplog):
    publish = lambda *sources: publish_next_version(  # noqa: E731
        store, ledger, lease, database=DB, sources=list(sources), settings=settings)
    # 2,000 records: Chroma has written all of them into its index files (sync_threshold 1,000), so the
    # answers can be compared id for id (records still in Chroma's log are searched exactly here, where
    # Chroma searches its graph: with this test's small M and ef those answers may differ)
    base, base_vectors = _delta(store, "d1", [f"id-{n:04d}" for n in range(2000)], revision=R1, seed=1)
    publish(base)
    publish(_delta(store, "d2", [f"new-{n:02d}" for n in range(50)], revision=R1, seed=2)[0])
    relabel = MetadataUpdates()
    relabel.add("id-0100", 1, {"merchant_name": "New", "label_status": "validated"})
    replaced, new_vector = _delta(store, "d3", ["id-0007"], revision=R2, seed=3)
    publish(replaced)  # the base segment is rewritten: its log now holds a deletion
    publish(_delta(store, "m1", [], revision=R2, seed=4, profile="flat", updates=relabel)[0])
    assert len(read_version(store, ledger.get_published(DB)).segments) >= 2

    rng = np.random.default_rng(4)
    queries = np.concatenate([new_vector, base_vectors[[7, 100, 1900]],
                              rng.standard_normal((20, DIMS)).astype(np.float32)])
    with caplog.at_level(logging.WARNING, logger=search.__name__):
        got, through_chroma = _answer(store, ledger, settings, queries, monkeypatch)
    assert through_chroma == 0 and not caplog.records  # every segment searched in this process
    assert got["ids"][0][0] == "id-0007" and got["documents"][0][0] == "id-0007 v3"
    assert "id-0007" not in got["ids"][1]  # its old vector is gone
    assert got["ids"][2][0] == "id-0100" and got["metadatas"][2][0]["merchant_name"] == "New"

    version = ledger.get_published(DB)
    sizes = [segment.count for segment in read_version(store, version).segments]
    rewritten = version_segments(store, version, settings)[sizes.index(max(sizes))]
    with StoredRecords(rewritten, DB) as records:
        assert 3 in {operation for operation, *_ in records.unindexed()[1]}  # a deletion in Chroma's log

    def refuse(path, *args, **kwargs):
        raise ChromaFormatError(f"{path}: refused by this test")

    def refuse_rewritten(path, *args, **kwargs):
        return refuse(path) if Path(path) == Path(rewritten) else VectorIndex(path, *args, **kwargs)

    monkeypatch.setattr(search, "VectorIndex", refuse_rewritten)
    mixed, through_chroma = _answer(store, ledger, settings, queries, monkeypatch)
    assert through_chroma == 1  # that segment alone: the others stay in this process
    _same(mixed, got)
    monkeypatch.setattr(search, "VectorIndex", refuse)
    chroma, through_chroma = _answer(store, ledger, settings, queries, monkeypatch)
    assert through_chroma == len(sizes) >= 2  # Chroma's own query answered for every segment
    _same(chroma, got)


def _same(got, expected):
    assert got["ids"] == expected["ids"]
    assert got["documents"] == expected["documents"] and got["metadatas"] == expected["metadatas"]
    assert np.allclose(got["distances"], expected["distances"], atol=1e-5)
