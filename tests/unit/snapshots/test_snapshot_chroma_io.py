"""Chroma persist directories: index profiles, paging, closed handles, page validation."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from snapshot_pages import DIMS, make_page, make_pages

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import RecordPage, chroma_io, iter_pages
from embedding_ingest.snapshots.archive import pack_dir
from embedding_ingest.snapshots.exceptions import SnapshotBusyError


def _build(persist_dir: Path, pages: list[RecordPage], profile="cheap", settings=None) -> set[str]:
    with chroma_io.open_client(persist_dir) as client:
        col = chroma_io.create_collection(client, "lines", profile, settings)
        return chroma_io.upsert_pages(client, col, pages, dimensions=DIMS, where="test")


def _stored_hnsw(persist_dir: Path) -> dict:
    with chroma_io.open_client(persist_dir) as client:
        return chroma_io.get_collection(client, "lines").configuration_json["hnsw"]


def test_cheap_profile_uses_a_small_index(tmp_path):
    _build(tmp_path / "c", make_pages(10))
    hnsw = _stored_hnsw(tmp_path / "c")
    assert (hnsw["ef_construction"], hnsw["max_neighbors"]) == (8, 4)


def test_quality_profile_is_cosine_with_settings_parameters(tmp_path):
    settings = Settings(hnsw_ef_construction=64, hnsw_max_neighbors=12)
    _build(tmp_path / "q", make_pages(10), "quality", settings)
    hnsw = _stored_hnsw(tmp_path / "q")
    assert (hnsw["space"], hnsw["ef_construction"], hnsw["max_neighbors"]) == ("cosine", 64, 12)


def test_collections_never_embed_text_themselves(tmp_path):
    """Lesson 13: a text query must fail rather than be embedded by Chroma's default model."""
    _build(tmp_path / "c", make_pages(5))
    with chroma_io.open_client(tmp_path / "c") as client:
        col = chroma_io.get_collection(client, "lines")
        assert col.configuration_json["embedding_function"] != {"type": "known", "name": "default",
                                                                "config": {}}
        with pytest.raises(ValueError, match="provide an embedding function"):
            col.query(query_texts=["total"], n_results=1)


@pytest.mark.parametrize("page_size", [1, 7, 50, 300])
def test_iter_pages_yields_every_record_once_in_bounded_pages(tmp_path, page_size):
    written = _build(tmp_path / "c", make_pages(230, per_page=100))
    seen: list[str] = []
    for page in iter_pages(tmp_path / "c", "lines", page_size=page_size):
        assert 0 < len(page) <= page_size
        assert page.embeddings.shape == (len(page), DIMS)
        assert page.embeddings.dtype == np.float32
        seen.extend(page.ids)
    assert len(seen) == len(set(seen)) == 230
    assert set(seen) == written


def test_an_open_client_blocks_packing_and_a_closed_one_leaves_no_handles(tmp_path):
    persist_dir = tmp_path / "c"
    _build(persist_dir, make_pages(20))
    with chroma_io.open_client(persist_dir) as client:
        col = chroma_io.get_collection(client, "lines")
        assert col.count() == 20
        with pytest.raises(SnapshotBusyError, match="open file handle"):
            pack_dir(persist_dir, tmp_path / "busy.tar")
        del col
    sha, size = pack_dir(persist_dir, tmp_path / "ok.tar")
    assert len(sha) == 64 and size == (tmp_path / "ok.tar").stat().st_size
    assert chroma_io._open_paths_under(persist_dir) == []


def test_a_handle_closed_late_by_another_thread_is_waited_for_before_packing(tmp_path):
    """Issue 21: chromadb closes its SQLite connections on worker threads some time after close()
    returned, so a handle under a directory no client of ours holds any more is waited for."""
    persist_dir = tmp_path / "c"
    _build(persist_dir, make_pages(20))
    late = (persist_dir / "chroma.sqlite3").open("rb")
    closer = threading.Timer(0.3, late.close)
    closer.start()
    try:
        sha, size = pack_dir(persist_dir, tmp_path / "late.tar")
    finally:
        closer.join()
    assert late.closed and size == (tmp_path / "late.tar").stat().st_size and len(sha) == 64


def test_a_handle_never_closed_is_refused_after_the_wait_naming_the_file(tmp_path):
    persist_dir = tmp_path / "c"
    _build(persist_dir, make_pages(5))
    busy = r"open file handle\(s\) \(e\.g\. .*chroma\.sqlite3\)"
    with (persist_dir / "chroma.sqlite3").open("rb"), pytest.raises(SnapshotBusyError, match=busy):
        chroma_io.ensure_released(persist_dir, timeout=0.05)
    chroma_io.ensure_released(persist_dir, timeout=0.05)


def test_pages_larger_than_chromas_batch_limit_are_split(tmp_path):
    with chroma_io.open_client(tmp_path / "c") as client:
        limit = client.get_max_batch_size()
    ids = [f"big-{i}" for i in range(limit + 10)]
    page = RecordPage(ids=ids, embeddings=np.ones((len(ids), 4), np.float32),
                      metadatas=[{}] * len(ids), documents=[""] * len(ids))
    with chroma_io.open_client(tmp_path / "c") as client:
        col = chroma_io.create_collection(client, "lines", "cheap")
        chroma_io.upsert_pages(client, col, [page], dimensions=4, where="big")
        assert col.count() == limit + 10


def test_record_page_refuses_mismatched_columns():
    with pytest.raises(InvalidInputError, match="2 ids"):
        RecordPage(ids=["a", "b"], embeddings=np.zeros((3, 4)), metadatas=[{}, {}], documents=["", ""])
    with pytest.raises(InvalidInputError, match="1 metadatas"):
        RecordPage(ids=["a", "b"], embeddings=np.zeros((2, 4)), metadatas=[{}], documents=["", ""])


def test_record_page_names_an_empty_id():
    page = make_page(["good", ""])
    with pytest.raises(InvalidInputError, match="record #1"):
        page.validate(DIMS, "delta x")


def test_record_pages_carry_metadata_arrays_as_chroma_takes_them(tmp_path):
    """Issue 23: non-empty arrays of one scalar type pass (and round-trip through Chroma); an empty or
    mixed array, or a nested value, is refused naming the record and key, before Chroma sees it."""
    good = {"valid_labels": ["DATE", "GRAND_TOTAL"], "counts": [1, 2], "label_DATE": True}
    page = RecordPage(ids=["a"], embeddings=np.ones((1, DIMS), np.float32), metadatas=[good], documents=["x"])
    page.validate(DIMS, "page")
    with chroma_io.open_client(tmp_path / "c") as client:
        col = chroma_io.create_collection(client, "words", "cheap")
        chroma_io.upsert_pages(client, col, [page], dimensions=DIMS, where="arrays")
        assert col.get(ids=["a"])["metadatas"][0] == good
    for bad, problem in (([], "empty array"), (["A", 1], "all of one type"), ([["A"]], "all of one type"),
                         ({"a": 1}, "got dict")):
        page = RecordPage(ids=["a"], embeddings=np.ones((1, DIMS), np.float32), metadatas=[{"k": bad}],
                          documents=["x"])
        with pytest.raises(InvalidInputError, match=f"record 'a' metadata 'k' .*{problem}"):
            page.validate(DIMS, "page")
