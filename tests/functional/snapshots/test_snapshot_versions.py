"""Keeping, rolling back, caching and querying published versions."""

from __future__ import annotations

import shutil

import pytest

from embedding_ingest.config import StorageMode
from embedding_ingest.consumer import Snapshot
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import (
    chroma_io,
    ids_present,
    iter_pages,
    iter_published_pages,
    pointer_key,
    prune_versions,
    publish_next_version,
    read_manifest,
    read_version,
    rollback,
    version_segments,
    versions_prefix,
)
from embedding_ingest.snapshots.exceptions import (
    ModelMismatchError,
    NothingPublishedError,
    VersionNotFoundError,
)
from embedding_ingest.stores.exceptions import StaleFencingTokenError
from embedding_ingest.stores.records import ItemKind

DB = "lines"


def _publish_n(store, ledger, lease, settings, make_delta, n, size=10):
    versions = []
    for i in range(n):
        outcome = publish_next_version(store, ledger, lease, database=DB, settings=settings,
                                       sources=[make_delta(f"d{i}", size, start=i * size)])
        versions.append(outcome.version)
    return versions


@pytest.fixture
def settings(settings):
    """Every publish merges its tail into the one segment (F = 2: two segments of one tier), so each
    version here is one segment, as these lifecycle tests read it."""
    return settings.model_copy(update={"snapshot_merge_factor": 2})


def _stored_versions(store) -> set[str]:
    return {info.key.split("/")[3] for info in store.list(versions_prefix(DB))}


def _cached_segments(settings) -> set[str]:
    root = settings.cache_dir / DB / "segments"
    return {p.name for p in root.iterdir() if not p.name.startswith(".")}


def _segment_ids(store, *versions) -> set[str]:
    return {s.segment_id for v in versions for s in read_version(store, v).segments}


def _archive(store, version) -> str:
    """The archive key of a one-segment version's segment."""
    segment, = read_version(store, version).segments
    return read_manifest(store, segment.key).archive_key


def test_publishing_keeps_only_the_newest_k_versions(store, ledger, lease, settings, make_delta):
    versions = _publish_n(store, ledger, lease, settings, make_delta, 5)
    newest = {v.version for v in versions[-3:]}

    assert [v.version for v in ledger.list_versions(DB)] == [v.version for v in versions[::-1][:3]]
    assert _stored_versions(store) == newest
    assert _cached_segments(settings) == _segment_ids(store, *versions[-3:])
    assert ledger.get_published(DB).count == 50


def test_prune_never_removes_the_current_version(store, ledger, lease, settings, make_delta):
    versions = _publish_n(store, ledger, lease, settings, make_delta, 3)
    rollback(store, ledger, lease, database=DB, version=versions[0].version)
    removed = prune_versions(store, ledger, database=DB, keep=1)

    assert ledger.get_published(DB).version == versions[0].version
    assert set(removed) == {versions[1].version, versions[2].version}
    assert _stored_versions(store) == {versions[0].version}
    with pytest.raises(InvalidInputError):
        prune_versions(store, ledger, database=DB, keep=0)


def test_rollback_points_readers_at_the_older_version(store, ledger, lease, settings, make_delta):
    v1, v2 = _publish_n(store, ledger, lease, settings, make_delta, 2)
    moved = rollback(store, ledger, lease, database=DB, version=v1.version)

    current = ledger.get_published(DB)
    assert current.version == v1.version == moved.version
    assert current.parent_version == v2.version
    assert store.get_json(pointer_key(DB))["version"] == v1.version
    assert ids_present(store, current, ["line-00000", "line-00015"], settings) == {"line-00000"}
    # The next publish builds on the rolled-back version, not on v2.
    outcome = publish_next_version(store, ledger, lease, database=DB, settings=settings,
                                   sources=[make_delta("d9", 5, start=90)])
    assert outcome.total_embeddings == 15
    assert outcome.version.parent_version == v1.version


def test_rollback_to_an_unknown_version_or_with_a_stale_lease_is_refused(store, ledger, lease, settings,
                                                                          make_delta):
    v1, v2 = _publish_n(store, ledger, lease, settings, make_delta, 2)
    with pytest.raises(VersionNotFoundError, match="nope"):
        rollback(store, ledger, lease, database=DB, version="nope")
    ledger.release_lock(lease)
    assert ledger.acquire_lock(DB, "writer-2", lease_seconds=3600) is not None
    with pytest.raises(StaleFencingTokenError):
        rollback(store, ledger, lease, database=DB, version=v1.version)
    assert ledger.get_published(DB).version == v2.version


def test_cached_versions_are_not_downloaded_again(store, ledger, lease, settings, make_delta):
    v1, v2 = _publish_n(store, ledger, lease, settings, make_delta, 2)
    assert store.downloads[_archive(store, v1)] == 0  # v2 was built from the cached v1

    pulled_version = ledger.get_published(DB)
    version_segments(store, pulled_version, settings)
    assert pulled_version == v2 and store.downloads[_archive(store, v2)] == 0

    shutil.rmtree(settings.cache_dir)  # a fresh machine: one download, then cache hits
    for _ in range(2):
        paths = version_segments(store, ledger.get_published(DB), settings)
        assert sum(len(p) for path in paths for p in iter_pages(path, DB)) == 20
    assert store.downloads[_archive(store, v2)] == 1


def test_without_a_cache_the_current_version_is_downloaded_to_build_on(store, ledger, lease, settings,
                                                                       make_delta):
    s3_settings = settings.model_copy(update={"chromadb_storage_mode": StorageMode.S3})
    v1, _ = _publish_n(store, ledger, lease, s3_settings, make_delta, 2)
    assert store.downloads[_archive(store, v1)] == 1


def test_a_tampered_cache_entry_is_fetched_again(store, ledger, lease, settings, make_delta):
    v1, = _publish_n(store, ledger, lease, settings, make_delta, 1)
    cached = settings.cache_dir / DB / "segments" / _segment_ids(store, v1).pop()
    shutil.rmtree(cached)
    with chroma_io.open_client(cached) as client:  # a directory that is not what v1 holds
        chroma_io.create_collection(client, DB, "quality")
    outcome = publish_next_version(store, ledger, lease, database=DB, settings=settings,
                                   sources=[make_delta("dx", 5, start=100)])
    assert outcome.total_embeddings == 15
    assert store.downloads[_archive(store, v1)] == 1


def test_a_cache_entry_whose_files_were_deleted_is_fetched_again(store, ledger, lease, settings,
                                                                 make_delta):
    v1, = _publish_n(store, ledger, lease, settings, make_delta, 1)
    cached = settings.cache_dir / DB / "segments" / _segment_ids(store, v1).pop()
    for child in cached.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    version = ledger.get_published(DB)
    paths = version_segments(store, version, settings)
    assert version == v1 and paths == [cached]
    assert sum(len(page.ids) for page in iter_pages(cached, DB)) == v1.count
    assert store.downloads[_archive(store, v1)] == 1


def _vector_of(store, ledger, settings, item_id):
    for page in iter_published_pages(store, ledger.get_published(DB), settings):
        if item_id in page.ids:
            return page.embeddings[page.ids.index(item_id)]
    raise AssertionError(item_id)


def test_query_finds_a_record_by_its_own_vector(store, ledger, lease, settings, make_delta):
    _publish_n(store, ledger, lease, settings, make_delta, 2, size=100)
    vector = _vector_of(store, ledger, settings, "line-00123")
    with Snapshot(ItemKind.LINE, store=store, ledger=ledger, settings=settings) as snapshot:
        got = snapshot.query(query_embeddings=vector, n_results=5)

    assert len(got["ids"][0]) == 5
    assert got["ids"][0][0] == "line-00123"
    assert got["distances"][0][0] == pytest.approx(0.0, abs=1e-5)
    assert got["documents"][0][0] == "text of line-00123"
    assert got["metadatas"][0][0]["n"] == 23
    assert got["distances"][0] == sorted(got["distances"][0])


def test_query_refuses_another_model_or_width(store, ledger, lease, settings, make_delta):
    with pytest.raises(NothingPublishedError):
        Snapshot(ItemKind.LINE, store=store, ledger=ledger, settings=settings)
    _publish_n(store, ledger, lease, settings, make_delta, 1)
    with Snapshot(ItemKind.LINE, store=store, ledger=ledger, settings=settings) as snapshot:
        # A text is embedded with the snapshot's own model; no encoder here makes test-model-16's.
        with pytest.raises(ModelMismatchError, match="test-model-16"):
            snapshot.query(query_texts=["TOTAL"], n_results=3)
        with pytest.raises(InvalidInputError, match=r"needs \(k, 16\) vectors"):
            snapshot.query(query_embeddings=[1.0] * 8, n_results=3)


def _ids_present_in_child(root, version, ids, settings):
    from embedding_ingest.stores.local_objects import LocalObjectStore

    return ids_present(LocalObjectStore(root), version, ids, settings)


def test_processes_share_the_cache_safely(store, ledger, lease, settings, make_delta):
    """Several processes fetching and reading the same uncached version at once all see it whole."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    version, = _publish_n(store, ledger, lease, settings, make_delta, 1, size=50)
    shutil.rmtree(settings.cache_dir)
    probe = ["line-00000", "line-00049", "line-00050"]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_ids_present_in_child, [store.root] * 4, [version] * 4, [probe] * 4,
                                [settings] * 4))
    assert results == [{"line-00000", "line-00049"}] * 4
    # ids_present reads id indexes only (issue 21): each cached once, whole; no segment fetched.
    indexes = sorted((settings.cache_dir / DB / "ids").glob("*.sqlite3"))
    assert {p.name.split("-")[0] for p in indexes} == _segment_ids(store, version)
    assert not (settings.cache_dir / DB / "segments").exists()
