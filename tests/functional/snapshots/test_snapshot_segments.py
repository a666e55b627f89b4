"""Layered versions: a publish adds one segment of only the new ids, versions share segments (stored
and cached once), reads span every segment, compaction folds them into one, and pruning deletes
only segments no kept version uses."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from embedding_ingest.consumer.snapshot import Snapshot
from embedding_ingest.snapshots import (
    compact_published,
    ids_present,
    iter_pages,
    iter_published_pages,
    prune_versions,
    publish_next_version,
    read_manifest,
    read_version,
    rollback,
    segments_prefix,
    version_segments,
    versions_prefix,
    write_snapshot,
)
from embedding_ingest.snapshots.exceptions import SnapshotCountMismatchError
from embedding_ingest.snapshots.models import manifest_key
from embedding_ingest.stores.records import ItemKind, SnapshotVersion

DB = "lines"


@pytest.fixture
def layered(settings):
    """Compaction only by segment count, so small test publishes stay layered."""
    return settings.model_copy(update={"snapshot_merge_factor": 100, "snapshot_max_segments": 3,
                                       "snapshot_versions_kept": 10})


def _publish(store, ledger, lease, settings, *sources):
    return publish_next_version(store, ledger, lease, database=DB, sources=list(sources), settings=settings)


def _segment_ids(store, version) -> list[list[str]]:
    """The ids of each segment of `version`, read from the stored archives."""
    out = []
    for path in pull_segments(store, version):
        out.append(sorted(i for page in iter_pages(path, DB) for i in page.ids))
    return out


def pull_segments(store, version):
    from embedding_ingest.snapshots import materialize

    manifest = read_version(store, version)
    return [materialize(store, s.key, store.root.parent / "read" / version.version / s.segment_id)
            for s in manifest.segments]


def _vectors(store, version, settings) -> dict[str, np.ndarray]:
    pages = iter_published_pages(store, version, settings)
    return {i: page.embeddings[k] for page in pages for k, i in enumerate(page.ids)}


def _stored_segments(store) -> set[str]:
    return {info.key.split("/")[3] for info in store.list(segments_prefix(DB))}


def test_a_publish_adds_one_segment_of_only_the_new_ids(store, ledger, lease, layered, make_delta):
    v1 = _publish(store, ledger, lease, layered, make_delta("d1", 100)).version
    outcome = _publish(store, ledger, lease, layered, make_delta("d2", 30, start=90, seed=5))
    v2 = outcome.version

    assert (outcome.total_embeddings, outcome.added_embeddings) == (120, 30)
    first, second = read_version(store, v1), read_version(store, v2)
    assert second.segments[0] == first.segments[0]  # shared, not copied
    assert [s.count for s in second.segments] == [100, 20]
    assert _segment_ids(store, v2)[1] == [f"line-{i:05d}" for i in range(100, 120)]
    # Ids already published keep their published record (line-00095 is still the d1 one).
    vectors, original = _vectors(store, v2, layered), _vectors(store, v1, layered)
    assert np.array_equal(vectors["line-00095"], original["line-00095"])
    assert ids_present(store, v2, ["line-00000", "line-00119", "line-00120"], layered) == {
        "line-00000", "line-00119"}


def test_sources_already_published_add_nothing(store, ledger, lease, layered, make_delta):
    v1 = _publish(store, ledger, lease, layered, make_delta("d1", 50)).version
    segments = _stored_segments(store)
    again = _publish(store, ledger, lease, layered, make_delta("d2", 20, start=10, seed=9))

    assert again.version == v1
    assert (again.total_embeddings, again.added_embeddings) == (50, 20)
    assert _stored_segments(store) == segments and len(ledger.list_versions(DB)) == 1


def test_a_new_version_downloads_none_of_the_segments_it_shares(store, ledger, lease, layered, make_delta):
    _publish(store, ledger, lease, layered, make_delta("d1", 40))
    shutil.rmtree(layered.cache_dir)  # a fresh machine
    v2 = _publish(store, ledger, lease, layered, make_delta("d2", 10, start=40)).version
    v3 = _publish(store, ledger, lease, layered, make_delta("d3", 10, start=50)).version

    segments = read_version(store, v3).segments
    archives = [read_manifest(store, s.key).archive_key for s in segments]
    # Publishing only adds tails: the base's id index once (issue 21), never its archive.
    assert [store.downloads[a] for a in archives] == [0, 0, 0]
    assert [store.downloads[s.ids_key] for s in segments] == [1, 0, 0]
    paths = version_segments(store, ledger.get_published(DB), layered)
    assert [store.downloads[a] for a in archives] == [1, 0, 0]  # a reader fetches the base once
    assert [sum(len(p) for p in iter_pages(path, DB)) for path in paths] == [40, 10, 10]
    assert read_version(store, v2).segments == read_version(store, v3).segments[:2]


def test_a_query_merges_the_nearest_records_of_every_segment(store, ledger, lease, layered, make_delta):
    _publish(store, ledger, lease, layered, make_delta("d1", 60))
    _publish(store, ledger, lease, layered, make_delta("d2", 60, start=60, seed=7))
    records = _vectors(store, ledger.get_published(DB), layered)

    for target in ("line-00003", "line-00100"):
        with Snapshot(ItemKind.LINE, store=store, ledger=ledger, settings=layered) as snapshot:
            got = snapshot.query(query_embeddings=records[target], n_results=8)
        hit_ids, distances = got["ids"][0], got["distances"][0]
        assert hit_ids[0] == target and distances[0] == pytest.approx(0.0, abs=1e-5)
        assert len(hit_ids) == 8 and distances == sorted(distances)
        # The same 8 as a brute-force cosine search over every record.
        ids = sorted(records)
        matrix = np.stack([records[i] for i in ids])
        query = records[target]
        cosine = 1 - matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
        assert set(hit_ids) == {ids[i] for i in np.argsort(cosine)[:8]}


def test_too_many_segments_are_compacted_into_one(store, ledger, lease, layered, make_delta):
    versions = [_publish(store, ledger, lease, layered, make_delta(f"d{i}", 10 + i, start=100 * i)).version
                for i in range(4)]

    assert [len(read_version(store, v).segments) for v in versions] == [1, 2, 3, 1]
    compacted = read_version(store, versions[-1])
    assert compacted.count == versions[-1].count == 10 + 11 + 12 + 13
    assert sorted(i for p in iter_published_pages(store, versions[-1], layered) for i in p.ids) == sorted(
        f"line-{100 * v + k:05d}" for v in range(4) for k in range(10 + v))
    assert read_manifest(store, compacted.segments[0].key).profile == "quality"


def test_merges_take_similar_small_segments_and_never_a_full_one(store, ledger, lease, settings, make_delta):
    """Tiered, bounded merging (issue 21): with the maximum just under twice the base's archive, the
    base is full and never merged (nor downloaded); the small tails are merged once there are F = 2 of
    them; an explicit compaction then finds nothing it may merge."""
    base_version = _publish(store, ledger, lease, settings, make_delta("d0", 100)).version
    base = read_version(store, base_version).segments[0]
    size = read_manifest(store, base.key).archive_bytes
    tiered = settings.model_copy(update={"snapshot_merge_factor": 2, "snapshot_merge_floor_bytes": size,
                                         "snapshot_max_segment_bytes": 2 * size - 1})
    one_tail = _publish(store, ledger, lease, tiered, make_delta("d1", 5, start=100)).version
    merged = _publish(store, ledger, lease, tiered, make_delta("d2", 6, start=200)).version

    assert [s.count for s in read_version(store, one_tail).segments] == [100, 5]
    segments = read_version(store, merged).segments
    assert segments[0] == base and [s.count for s in segments] == [100, 11] and merged.count == 111
    assert store.downloads[read_manifest(store, base.key).archive_key] == 0
    assert compact_published(store, ledger, lease, database=DB, settings=tiered) == merged
    expected = [*range(100), *range(100, 105), *range(200, 206)]
    assert sorted(i for p in iter_published_pages(store, merged, tiered) for i in p.ids) == [
        f"line-{i:05d}" for i in expected]


def test_prune_deletes_only_segments_no_kept_version_uses(store, ledger, lease, layered, make_delta):
    versions = [_publish(store, ledger, lease, layered, make_delta(f"d{i}", 10, start=10 * i)).version
                for i in range(5)]
    layouts = [[s.segment_id for s in read_version(store, v).segments] for v in versions]
    assert [len(ids) for ids in layouts] == [1, 2, 3, 1, 2]  # the 4th publish compacted

    assert set(prune_versions(store, ledger, database=DB, keep=2)) == {v.version for v in versions[:3]}
    assert _stored_segments(store) == set(layouts[3]) | set(layouts[4])
    assert set(prune_versions(store, ledger, database=DB, keep=1)) == {versions[3].version}
    assert _stored_segments(store) == set(layouts[4])  # the compacted base stays: the 5th uses it
    assert sum(len(p) for p in iter_published_pages(store, versions[4], layered)) == 50


def test_rollback_to_a_kept_version_reads_its_segments(store, ledger, lease, layered, make_delta):
    versions = [_publish(store, ledger, lease, layered, make_delta(f"d{i}", 10, start=10 * i)).version
                for i in range(3)]
    shutil.rmtree(layered.cache_dir)
    rolled = rollback(store, ledger, lease, database=DB, version=versions[1].version)

    assert ids_present(store, rolled, ["line-00000", "line-00019", "line-00020"], layered) == {
        "line-00000", "line-00019"}
    outcome = _publish(store, ledger, lease, layered, make_delta("d9", 5, start=90))
    assert outcome.total_embeddings == 25 and outcome.version.parent_version == versions[1].version
    assert read_version(store, outcome.version).segments[:2] == read_version(store, versions[1]).segments


def test_compact_published_keeps_the_records_and_reads_stay_whole(store, ledger, lease, layered, make_delta):
    for i in range(3):
        _publish(store, ledger, lease, layered, make_delta(f"d{i}", 15, start=15 * i))
    before = ledger.get_published(DB)
    assert len(read_version(store, before).segments) == 3
    # Issue 21: a process that has just queried the collection (the consumer's Snapshot, which
    # open_snapshot returns) compacts it; the compaction's own client's handles close late.
    with Snapshot(ItemKind.LINE, store=store, ledger=ledger, settings=layered) as reader:
        first = next(iter_published_pages(store, before, layered))
        found = reader.query(query_embeddings=first.embeddings[:1], n_results=3)
        assert found["ids"][0][0] == first.ids[0]

    after = compact_published(store, ledger, lease, database=DB, settings=layered)

    assert len(read_version(store, after).segments) == 1
    assert after.count == before.count == 45 and after.parent_version == before.version
    assert compact_published(store, ledger, lease, database=DB, settings=layered) == after
    assert sorted(i for p in iter_published_pages(store, after, layered) for i in p.ids) == [
        f"line-{i:05d}" for i in range(45)]


def test_a_version_whose_segments_disagree_with_its_count_is_refused(store, ledger, lease, layered,
                                                                     make_delta):
    current = _publish(store, ledger, lease, layered, make_delta("d1", 20)).version
    key = manifest_key(current.key)
    body = store.get_json(key)
    body["segments"][0]["count"] = 19
    body["count"] = 19
    store.put_json(key, body)

    with pytest.raises(SnapshotCountMismatchError, match="expected 20"):
        ids_present(store, current, ["line-00000"], layered)
    with pytest.raises(SnapshotCountMismatchError):
        _publish(store, ledger, lease, layered, make_delta("d2", 5, start=20))


def test_a_version_published_before_segments_reads_and_is_built_on(store, ledger, lease, layered,
                                                                   make_delta, tmp_path):
    """Upgrade path: a version that is one snapshot at its own prefix is a version of one segment."""
    from snapshot_pages import DIMS, make_pages

    prefix = f"{versions_prefix(DB)}legacy-v1/"
    manifest = write_snapshot(store, prefix, make_pages(30, prefix="line"), collection=DB, dimensions=DIMS,
                              model="test-model-16", profile="quality", settings=layered)
    legacy = SnapshotVersion(database=DB, version="legacy-v1", key=prefix, count=30, dimensions=DIMS,
                             model=manifest.model, published_at=1.0, fencing_token=lease.fencing_token)
    ledger.publish_version(legacy, expected_current=None, lease=lease)

    assert ids_present(store, legacy, ["line-00029", "line-00030"], layered) == {"line-00029"}
    nxt = _publish(store, ledger, lease, layered, make_delta("d2", 10, start=30)).version
    assert [s.key for s in read_version(store, nxt).segments][0] == prefix
    prune_versions(store, ledger, database=DB, keep=1)  # the legacy version goes, its archive stays in use
    assert store.exists(manifest_key(prefix))
    assert sum(len(p) for p in iter_published_pages(store, nxt, layered)) == 40
