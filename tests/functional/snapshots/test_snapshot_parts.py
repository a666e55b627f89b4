"""A segment is stored in two parts (issue 21): its records (chroma.sqlite3) at the segment's prefix and
its vectors (Chroma's HNSW folder) at a content-addressed key of their own, so a rewrite that changes only
records (issue 23's metadata repack) uploads only them; both parts are checked like the one archive was;
a segment stored in one archive (published before the split) still reads."""

from __future__ import annotations

import shutil
import sqlite3
import tarfile

import numpy as np
import pytest
from snapshot_pages import DIMS

from embedding_ingest.snapshots import (
    cache,
    chroma_io,
    compact_published,
    publish_next_version,
    read_manifest,
    read_version,
)
from embedding_ingest.snapshots.archive import materialize, pack_dir, upload_snapshot
from embedding_ingest.snapshots.exceptions import SnapshotCountMismatchError
from embedding_ingest.snapshots.metadata_update import rewrite_segment
from embedding_ingest.snapshots.models import manifest_key
from embedding_ingest.snapshots.query import version_segments
from embedding_ingest.snapshots.retention import prune_versions
from embedding_ingest.snapshots.segments import segments_prefix, upload_segment
from embedding_ingest.snapshots.verify import verify_database
from embedding_ingest.stores.exceptions import CorruptObjectError

DB = "lines"
MODEL = "test-model-16"


@pytest.fixture
def layered(settings):
    return settings.model_copy(update={"snapshot_merge_factor": 100, "snapshot_versions_kept": 10})


def _members(store, key: str) -> list[str]:
    with tarfile.open(store.root / key) as tar:
        return tar.getnames()


def _record(persist_dir, item_id: str) -> tuple[str, np.ndarray]:
    with chroma_io.open_client(persist_dir) as client:
        got = chroma_io.get_collection(client, DB).get(ids=[item_id], include=["documents", "embeddings"])
    return got["documents"][0], np.asarray(got["embeddings"][0])


def test_records_and_vectors_apart_and_a_records_only_rewrite_uploads_no_vectors(
        store, ledger, lease, layered, make_delta, tmp_path):
    v1 = publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d1", 40)],
                              settings=layered).version
    segment = read_version(store, v1).segments[0]
    manifest = read_manifest(store, segment.key)
    assert manifest.vectors is not None and manifest.vectors.key.startswith(f"{DB}/snapshot/vectors/")
    assert segment.vectors_sha256 == manifest.vectors.sha256
    assert _members(store, manifest.archive_key) == ["chroma.sqlite3"]
    # readers from before the split require archive_key: they refuse this segment, not query it vectorless
    raw = store.get_json(manifest_key(segment.key))
    assert "archive_key" not in raw and raw["records_key"] == manifest.archive_key
    assert all("/" in name for name in _members(store, manifest.vectors.key))

    # A records-only rewrite, as issue 23's repack does it: chroma.sqlite3 changed, no HNSW file at hand.
    entry = cache.segment_dir(layered, DB, segment)
    document, vector = _record(entry, "line-00003")
    work = tmp_path / "repack"
    work.mkdir()
    shutil.copy2(entry / "chroma.sqlite3", work / "chroma.sqlite3")
    with sqlite3.connect(work / "chroma.sqlite3") as db:
        db.execute("UPDATE embedding_metadata SET string_value = 'relabelled' WHERE key = 'chroma:document' "
                   "AND id = (SELECT id FROM embeddings WHERE embedding_id = 'line-00003')")
    db.close()
    store.before_upload[f"{DB}/snapshot/vectors/"] = lambda: pytest.fail("the vectors were uploaded again")
    shared = cache.stored_vectors(store, layered, DB, segment)
    assert shared is not None and shared.sha256 == segment.vectors_sha256
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    rewritten = upload_segment(store, work, scratch, database=DB, count=40, dimensions=DIMS, model=MODEL,
                               sources=[segment.key], vectors=shared)
    assert rewritten.key != segment.key and rewritten.vectors_sha256 == segment.vectors_sha256
    cold = materialize(store, rewritten.key, tmp_path / "cold")  # records part + the shared vectors part
    assert _record(cold, "line-00003")[0] == "relabelled" != document
    assert np.array_equal(_record(cold, "line-00003")[1], vector)
    # a records-only rewrite that finds fewer ids or records than expected says which (review finding 8)
    relabel = {"line-00003": (5, {"label_status": "validated"})}
    with pytest.raises(SnapshotCountMismatchError, match=r"ids to update \(not in it: \['nobody'\]\): "
                                                         "expected 2 unique records, snapshot holds 1"):
        rewrite_segment(entry, tmp_path / "w1", database=DB, remove=set(), expected=40,
                        updates={**relabel, "nobody": (5, {})})
    with pytest.raises(SnapshotCountMismatchError, match="its records: expected 41 unique records, "
                                                         "snapshot holds 40"):
        rewrite_segment(entry, tmp_path / "w2", database=DB, remove=set(), updates=relabel, expected=41)

    # A damaged vectors part is named by its key, by verify and by a writer however warm its cache.
    path = store.root / manifest.vectors.key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert [p.key for p in verify_database(store, ledger, layered, DB).problems] == [manifest.vectors.key]
    with pytest.raises(CorruptObjectError, match=rf"{manifest.vectors.key}.*sha256"):
        publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d2", 5, start=40)],
                             settings=layered)
    assert ledger.get_published(DB).version == v1.version


def test_a_segment_in_one_archive_still_reads_and_its_merge_is_stored_in_two_parts(
        store, ledger, lease, layered, make_delta, tmp_path):
    v1 = publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d1", 30)],
                              settings=layered).version
    entry = cache.segment_dir(layered, DB, read_version(store, v1).segments[0])
    whole = tmp_path / "whole.tar"
    sha256, size = pack_dir(entry, whole)  # as segments were stored before the split
    prefix = f"{segments_prefix(DB)}{sha256[:24]}/"
    upload_snapshot(store, prefix, whole, sha256=sha256, size=size, collection=DB, count=30, dimensions=DIMS,
                    model=MODEL, profile="quality", sources=[])
    body = store.get_json(manifest_key(v1.key))
    body["segments"] = [{"key": prefix, "count": 30, "sha256": sha256}]
    store.put_json(manifest_key(v1.key), body)
    assert read_manifest(store, prefix).vectors is None
    assert "archive_key" in store.get_json(manifest_key(prefix))  # one archive: what old readers read

    cold = layered.model_copy(update={"chroma_root": tmp_path / "cold"})
    [legacy_dir] = version_segments(store, v1, cold)
    assert chroma_io.collection_info(legacy_dir) == [(DB, 30)]
    v2 = publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d2", 5, start=30)],
                              settings=layered).version
    tail = read_manifest(store, read_version(store, v2).segments[1].key).vectors.key
    merged = compact_published(store, ledger, lease, database=DB, settings=layered)
    [segment] = read_version(store, merged).segments
    assert segment.count == 35 and segment.vectors_sha256 is not None
    assert verify_database(store, ledger, layered, DB).ok
    prune_versions(store, ledger, database=DB, keep=1)  # a vectors part goes with its last segment
    assert not store.exists(tail) and store.exists(read_manifest(store, segment.key).vectors.key)
