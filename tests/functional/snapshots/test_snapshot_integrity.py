"""Integrity of published versions: verify names every bad object by key; the local cache cannot hide a
damaged store from a writer; a rollback checks its target first and moves nothing when it is bad."""

from __future__ import annotations

import sqlite3

import pytest

from embedding_ingest.snapshots import cache as segment_cache
from embedding_ingest.snapshots import publish_next_version, read_manifest, read_version, rollback
from embedding_ingest.snapshots.verify import verify_database
from embedding_ingest.stores.exceptions import CorruptObjectError, ObjectNotFoundError

DB = "lines"


@pytest.fixture
def layered(settings):
    return settings.model_copy(update={"snapshot_merge_factor": 100, "snapshot_max_segments": 5,
                                       "snapshot_versions_kept": 10})


@pytest.fixture
def two_versions(store, ledger, lease, layered, make_delta):
    """v1 = one segment (40 records), v2 = v1's segment + a new one (10 records); both cached."""
    v1 = publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d1", 40)],
                              settings=layered).version
    v2 = publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d2", 10, start=40)],
                              settings=layered).version
    return v1, v2


def _flip_a_byte(path, offset: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _archive_path(store, segment):
    return store.root / read_manifest(store, segment.key).archive_key


def test_verify_passes_a_whole_version_and_names_a_damaged_archive_by_key(store, ledger, layered,
                                                                         two_versions):
    v1, v2 = two_versions
    report = verify_database(store, ledger, layered, DB, all_versions=True)
    assert report.ok and report.versions == [v2.version, v1.version]
    assert (report.segments, report.records) == (2, 50)

    newest = read_version(store, v2).segments[1]
    _flip_a_byte(_archive_path(store, newest), offset=1000)
    report = verify_database(store, ledger, layered, DB)
    assert not report.ok
    archive_key = read_manifest(store, newest.key).archive_key
    assert [p.key for p in report.problems] == [archive_key]
    assert "sha256" in report.problems[0].problem
    assert report.records == 40  # the undamaged segment was still checked


def test_verify_names_a_corrupt_version_manifest_and_a_missing_segment(store, ledger, layered, two_versions):
    v1, v2 = two_versions
    (store.root / f"{v1.key}manifest.json").write_text("{not json")
    base = read_version(store, v2).segments[0]
    store.delete(read_manifest(store, base.key).archive_key)
    report = verify_database(store, ledger, layered, DB, all_versions=True)
    keys = {p.key for p in report.problems}
    assert f"{v1.key}manifest.json" in keys
    assert any(k.startswith(base.key) and k.endswith(".tar") for k in keys)


def test_verify_finds_a_damaged_cache_entry_and_repair_drops_it(store, ledger, layered, two_versions):
    _, v2 = two_versions
    base = read_version(store, v2).segments[0]
    entry = segment_cache.segment_dir(layered, DB, base)
    with sqlite3.connect(entry / "chroma.sqlite3") as db:  # a document changed in place
        db.execute("UPDATE embedding_metadata SET string_value = 'forged' WHERE key = 'chroma:document' "
                   "AND id = (SELECT MIN(id) FROM embeddings)")

    report = verify_database(store, ledger, layered, DB)
    assert not report.ok and not report.problems  # the store is fine
    assert [p.key for p in report.cache_problems] == [str(entry)]
    assert "differ" in report.cache_problems[0].problem

    repaired = verify_database(store, ledger, layered, DB, repair_cache=True)
    assert repaired.ok and repaired.cache_dropped == [str(entry)] and not entry.exists()
    assert verify_database(store, ledger, layered, DB).ok


def test_the_cache_cannot_hide_a_lost_archive_from_a_publish(store, ledger, lease, layered, two_versions,
                                                             make_delta):
    _, v2 = two_versions
    base = read_version(store, v2).segments[0]
    assert segment_cache.cached(layered, DB, base) is not None  # a publish would not need to download it
    store.delete(read_manifest(store, base.key).archive_key)
    with pytest.raises(ObjectNotFoundError, match=base.key):
        publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d3", 5, start=50)],
                             settings=layered)
    assert ledger.get_published(DB).version == v2.version


def test_a_warm_cache_cannot_carry_a_corrupt_base_into_a_new_version(store, ledger, lease, layered,
                                                                      two_versions, make_delta):
    """Issue 21, item 4: the base archive is damaged in the store (same size), the writer's cache still
    holds a good copy; the publish refuses, naming the archive, and moves nothing."""
    _, v2 = two_versions
    base = read_version(store, v2).segments[0]
    assert segment_cache.cached(layered, DB, base) is not None
    archive_key = read_manifest(store, base.key).archive_key
    _flip_a_byte(_archive_path(store, base))
    with pytest.raises(CorruptObjectError, match=rf"{archive_key}.*sha256"):
        publish_next_version(store, ledger, lease, database=DB, sources=[make_delta("d3", 5, start=50)],
                             settings=layered)
    assert ledger.get_published(DB).version == v2.version
    assert [v.version for v in ledger.list_versions(DB)][0] == v2.version
    assert store.get_json(f"{DB}/snapshot/latest/pointer.json")["version"] == v2.version


def test_a_writer_trusts_a_cached_base_only_while_its_archive_is_unchanged(store, ledger, lease, layered,
                                                                           two_versions, make_delta):
    """An intact base is not downloaded again (its etag is the one recorded at upload); an entry made
    before etags were recorded is checked once against the store's bytes, then trusted."""
    _, v2 = two_versions
    base = read_version(store, v2).segments[0]
    archive_key = read_manifest(store, base.key).archive_key
    manifest = store.get_json(f"{base.key}manifest.json")
    del manifest["archive_etag"]  # as written before archive_etag existed
    store.put_json(f"{base.key}manifest.json", manifest)
    before = store.downloads[archive_key]
    for n in range(2):
        publish_next_version(store, ledger, lease, database=DB,
                             sources=[make_delta(f"e{n}", 2, start=60 + 2 * n)], settings=layered)
    assert store.downloads[archive_key] == before + 1
    assert segment_cache.read_record(layered, DB, base.segment_id)["archive_etag"] == store.head(
        archive_key).etag


def test_a_cache_entry_of_other_content_is_fetched_again(store, ledger, layered, two_versions):
    _, v2 = two_versions
    base = read_version(store, v2).segments[0]
    record = segment_cache.record_path(layered, DB, base.segment_id)
    record.write_text(record.read_text().replace(base.sha256, "0" * 64))
    assert segment_cache.cached(layered, DB, base) is None  # dropped, not trusted
    path = segment_cache.fetch(store, layered, DB, base)
    assert store.downloads[read_manifest(store, base.key).archive_key] == 1
    assert segment_cache.entry_problem(layered, DB, base, path) is None
    assert verify_database(store, ledger, layered, DB).ok


def test_rollback_to_a_damaged_version_moves_nothing(store, ledger, lease, layered, two_versions):
    v1, v2 = two_versions
    only = read_version(store, v1).segments[0]
    assert segment_cache.cached(layered, DB, only) is not None  # the cache holds a good copy ...
    _flip_a_byte(_archive_path(store, only))  # ... of an archive the store has lost
    with pytest.raises(CorruptObjectError, match="sha256"):
        rollback(store, ledger, lease, database=DB, version=v1.version)
    assert ledger.get_published(DB).version == v2.version
    assert store.get_json(f"{DB}/snapshot/latest/pointer.json")["version"] == v2.version


def test_rollback_to_a_whole_version_moves_the_pointer(store, ledger, lease, layered, two_versions):
    v1, _ = two_versions
    moved = rollback(store, ledger, lease, database=DB, version=v1.version)
    assert ledger.get_published(DB).version == moved.version == v1.version
