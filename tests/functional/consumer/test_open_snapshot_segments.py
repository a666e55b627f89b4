"""open_snapshot's in-process search, per segment (review of issue 21's query path): a segment the index
reader refuses or cannot load is asked through Chroma alone, said once at WARNING (once per Snapshot:
a refresh hands the refusal over), while the other segments stay in this process; a refresh does not
read again the indexes of the segments it keeps."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from chromadb.api.models.Collection import Collection
from snapshot_support import TEXTS, counted, loads_of, point_at, same

from embedding_ingest import open_snapshot
from embedding_ingest.consumer import search
from embedding_ingest.snapshots import read_version, version_segments
from embedding_ingest.snapshots.chroma_hnsw import VectorIndex
from embedding_ingest.snapshots.exceptions import ChromaFormatError


@pytest.mark.parametrize("error", [ChromaFormatError("refused by this test"),
                                   TypeError("load_index() got an unexpected keyword argument")])
def test_a_segment_the_reader_refuses_or_cannot_load_alone_is_asked_through_chroma(
        layered_workspace, monkeypatch, caplog, error):
    ws = layered_workspace
    dirs = version_segments(ws.objects, ws.ledger.get_published("lines"), ws.settings)
    assert len(dirs) == 2
    with open_snapshot("lines", settings=ws.settings) as snap:
        expected = snap.query(query_texts=TEXTS, n_results=7)
    loads_of(monkeypatch, refuse=Path(dirs[1]), error=error)
    searched = counted(monkeypatch, VectorIndex, "search")
    asked = counted(monkeypatch, Collection, "query")
    with caplog.at_level(logging.INFO, logger=search.__name__), \
            open_snapshot("lines", settings=ws.settings) as snap:
        first = snap.query(query_texts=TEXTS, n_results=7)
        second = snap.query(query_texts=TEXTS, n_results=7)
    same(first, expected)
    same(second, expected)
    # the other segment stays in this process: Chroma is asked once per query, not once per segment
    assert (len(searched), len(asked)) == (2, 2)
    [said] = caplog.records  # once, not per query
    assert said.levelno == logging.WARNING
    assert str(dirs[1]) in said.getMessage() and f"{type(error).__name__}: {error}" in said.getMessage()


def test_a_search_the_index_cannot_answer_asks_chroma_for_that_segment_and_query(
        layered_workspace, monkeypatch):
    """hnswlib cannot always return n neighbours (VectorIndex.search then raises ChromaFormatError):
    Chroma answers for that segment, that query; the next query is searched in this process again."""
    ws = layered_workspace
    with open_snapshot("lines", settings=ws.settings) as snap:
        expected = snap.query(query_texts=TEXTS, n_results=7)
        real, failed = VectorIndex.search, []

        def once(index, vectors, n):
            if not failed:
                failed.append(index)
                raise ChromaFormatError("the index of 1 records could not return 7 neighbours")
            return real(index, vectors, n)
        monkeypatch.setattr(VectorIndex, "search", once)
        asked = counted(monkeypatch, Collection, "query")
        same(snap.query(query_texts=TEXTS, n_results=7), expected)
        assert len(asked) == 1  # that segment alone
        same(snap.query(query_texts=TEXTS, n_results=7), expected)
        assert len(asked) == 1


def test_refresh_reads_only_the_indexes_of_segments_it_had_not_read(layered_workspace, monkeypatch):
    ws = layered_workspace
    newest, older = ws.ledger.list_versions("lines")[0], ws.ledger.list_versions("lines")[-1]
    kept = [s.segment_id for s in read_version(ws.objects, older).segments]
    added = [s.segment_id for s in read_version(ws.objects, newest).segments if s.segment_id not in kept]
    assert kept and added and set(kept) < {s.segment_id for s in read_version(ws.objects, newest).segments}
    with open_snapshot("lines", settings=ws.settings) as snap:
        expected = snap.query(query_texts=TEXTS, n_results=7)
    loads = loads_of(monkeypatch)
    point_at(ws, older.version)
    try:
        with open_snapshot("lines", settings=ws.settings) as snap:
            snap.query(query_texts=TEXTS, n_results=3)
            assert sorted(loads) == sorted(kept)
            point_at(ws, newest.version)
            assert snap.refresh() is True
            same(snap.query(query_texts=TEXTS, n_results=7), expected)
            assert sorted(loads) == sorted([*kept, *added])  # the new segment alone was read
            point_at(ws, older.version)
            assert snap.refresh() is True
            snap.query(query_texts=TEXTS, n_results=3)
            assert sorted(loads) == sorted([*kept, *added])  # nothing read again
    finally:
        point_at(ws, newest.version)


def test_a_segment_refused_once_is_not_read_again_nor_warned_about_again_after_a_refresh(
        layered_workspace, monkeypatch, caplog):
    """The refusal is handed over with the indexes: a refused segment used to be read again (a refusal
    can come after hnswlib has loaded the whole index) and warned about again on every version."""
    ws = layered_workspace
    newest, older = ws.ledger.list_versions("lines")[0], ws.ledger.list_versions("lines")[-1]
    [refused] = version_segments(ws.objects, older, ws.settings)  # the segment both versions hold
    expected = {}
    for version in (older, newest):
        with open_snapshot("lines", settings=ws.settings, version=version.version) as snap:
            expected[version.version] = snap.query(query_texts=TEXTS, n_results=7)
    loads = loads_of(monkeypatch, refuse=Path(refused), error=ChromaFormatError("refused by this test"))
    point_at(ws, older.version)
    try:
        with caplog.at_level(logging.WARNING, logger=search.__name__), \
                open_snapshot("lines", settings=ws.settings) as snap:
            for version in (older, newest, older):
                point_at(ws, version.version)
                snap.refresh()
                same(snap.query(query_texts=TEXTS, n_results=7), expected[version.version])
    finally:
        point_at(ws, newest.version)
    assert loads.count(Path(refused).name) == 1
    [said] = caplog.records
    assert str(refused) in said.getMessage() and "refused by this test" in said.getMessage()
