"""Per-segment id indexes (issue 21): MarkBatchesComplete's lookup (published_revisions) and publish's
replace/skip decisions read ids and revisions from a small SQLite file per segment, never the segment's
vectors; segments published before indexes existed get one at the next publish; a damaged index in the
store stops a publish however warm the cache."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from embedding_ingest.snapshots import publish_next_version, read_manifest, read_version, write_snapshot
from embedding_ingest.snapshots.models import RecordPage, manifest_key
from embedding_ingest.snapshots.query import published_revisions
from embedding_ingest.snapshots.verify import verify_database
from embedding_ingest.stores.exceptions import CorruptObjectError
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

DB = "lines"


def _revisioned_delta(store, name: str, ids: range, dims: int, model: str) -> str:
    """A delta of `ids` whose records carry revision "rev-{id // 100}" (as batches would)."""
    rng = np.random.default_rng(len(ids))
    names = [f"line-{i:05d}" for i in ids]
    page = RecordPage(ids=names, embeddings=rng.standard_normal((len(names), dims)).astype(np.float32),
                      metadatas=[{"revision": f"rev-{i // 100}"} for i in ids],
                      documents=[f"text {n}" for n in names])
    prefix = f"{DB}/delta/{DB}/receipt_lines/{name}/"
    write_snapshot(store, prefix, [page], collection=DB, dimensions=dims, model=model)
    return prefix


def _tree_bytes(root) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def test_published_revisions_read_only_the_id_indexes_whatever_the_width(tmp_path, store, settings):
    """The same 300 ids published at 16 and at 512 dimensions: a cold lookup (a fresh function's /tmp)
    writes the same bytes to the cache dir, the id indexes and nothing else, and downloads no archive."""
    seen = {}
    for dims in (16, 512):
        work = tmp_path / f"d{dims}"
        counting = type(store)(work / "objects")  # the fixture's counting store, one per width
        ledger = SqliteLedger(work / "ledger.sqlite3")
        chosen = settings.model_copy(update={"chroma_root": work / "cache", "embedding_dimensions": dims,
                                             "snapshot_merge_factor": 100})
        lease = ledger.acquire_lock(DB, "writer", lease_seconds=3600)
        for n, ids in enumerate((range(0, 200), range(200, 300))):
            source = _revisioned_delta(counting, f"d{n}", ids, dims, chosen.embedding_model)
            publish_next_version(counting, ledger, lease, database=DB, settings=chosen, sources=[source])
        version = ledger.get_published(DB)
        segments = read_version(counting, version).segments
        manifests = [read_manifest(counting, s.key) for s in segments]
        archives = [m.archive_key for m in manifests] + [m.vectors.key for m in manifests if m.vectors]
        counting.downloads.clear()
        cold = chosen.model_copy(update={"chroma_root": work / "cold-cache"})

        found = published_revisions(counting, version, [f"line-{i:05d}" for i in range(0, 310, 7)], cold)

        assert found == {f"line-{i:05d}": f"rev-{i // 100}" for i in range(0, 300, 7)}
        assert [counting.downloads[a] for a in archives] == [0, 0, 0, 0]  # records and vectors parts
        assert [counting.downloads[s.ids_key] for s in segments] == [1, 1]
        indexes = sorted((work / "cold-cache" / DB / "ids").glob("*.sqlite3"))
        assert sum(p.stat().st_size for p in indexes) == sum(s.ids_bytes for s in segments)
        with sqlite3.connect(indexes[0]) as db:  # issue 23's column is there, unset
            assert db.execute("SELECT COUNT(*), COUNT(metadata_version) FROM ids").fetchone()[1] == 0
        archived = sum(info.size for info in counting.list(f"{DB}/snapshot/") if info.key.endswith(".tar"))
        seen[dims] = (_tree_bytes(work / "cold-cache"), archived)
        ledger.close()
    assert seen[16][0] == seen[512][0]  # the cache's bytes do not grow with the vectors ...
    assert seen[512][1] > 3 * seen[16][1]  # ... which more than tripled the archives


def test_segments_without_an_index_are_read_then_indexed_by_the_next_publish(store, ledger, lease, settings,
                                                                            make_delta):
    layered = settings.model_copy(update={"snapshot_merge_factor": 100})
    publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d1", 30)], settings=layered)
    version = ledger.get_published(DB)
    key = manifest_key(version.key)
    body = store.get_json(key)
    for segment in body["segments"]:  # as published before id indexes existed
        for field in ("ids_key", "ids_sha256", "ids_bytes"):
            segment.pop(field)
    store.put_json(key, body)
    cold = layered.model_copy(update={"chroma_root": layered.cache_dir.parent / "cold"})
    assert set(published_revisions(store, version, ["line-00000", "line-00099"], cold)) == {"line-00000"}

    after = publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d2", 5, start=30)],
                                 settings=layered).version
    segments = read_version(store, after).segments
    assert len(segments) == 2 and all(s.ids_key and store.exists(s.ids_key) for s in segments)
    assert set(published_revisions(store, after, ["line-00000", "line-00034"], cold)) == {
        "line-00000", "line-00034"}


def test_a_damaged_id_index_in_the_store_stops_a_publish_with_a_warm_cache(store, ledger, lease, settings,
                                                                            make_delta):
    layered = settings.model_copy(update={"snapshot_merge_factor": 100})
    first = publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d1", 30)],
                                 settings=layered).version
    index_key = read_version(store, first).segments[0].ids_key
    path = store.root / index_key
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptObjectError, match=f"{index_key}.*sha256"):
        publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d2", 5, start=30)],
                             settings=layered)
    assert ledger.get_published(DB).version == first.version
    report = verify_database(store, ledger, layered, DB)  # `snapshots verify` names it too
    assert [p.key for p in report.problems] == [index_key]
