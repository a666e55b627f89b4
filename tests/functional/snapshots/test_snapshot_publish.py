"""Publishing versions with a real SqliteLedger and LocalObjectStore: building on the previous
version, fencing, pointer compare-and-swap, re-runs, the mirror pointer and model checks, and what
fails after the pointer moved (recorded on the outcome, never failing the publish)."""

from __future__ import annotations

import pytest
from refusing_store import RefusingObjectStore

from embedding_ingest.snapshots import (
    ids_present,
    iter_published_pages,
    pointer_key,
    publish_next_version,
    read_manifest,
    read_version,
    rollback,
    segments_prefix,
    versions_prefix,
)
from embedding_ingest.snapshots.exceptions import ModelMismatchError
from embedding_ingest.snapshots.mirror import PLAIN_MANIFEST, plain_prefix
from embedding_ingest.snapshots.segments import version_id_of
from embedding_ingest.stores.exceptions import PointerConflictError, StaleFencingTokenError

DB = "lines"


def _publish(store, ledger, lease, settings, *sources):
    return publish_next_version(store, ledger, lease, database=DB, sources=list(sources), settings=settings)


def _version_keys(store) -> set[str]:
    """Every object of every version and segment."""
    return {info.key for prefix in (versions_prefix(DB), segments_prefix(DB)) for info in store.list(prefix)}


def test_first_publish_creates_a_quality_snapshot_of_the_sources(store, ledger, lease, settings, make_delta):
    outcome = _publish(store, ledger, lease, settings, make_delta("d1", 100))

    assert (outcome.total_embeddings, outcome.added_embeddings) == (100, 100)
    version = outcome.version
    assert ledger.get_published(DB) == version
    assert version.key == f"{versions_prefix(DB)}{version.version}/"
    assert (version.count, version.parent_version, version.fencing_token) == (100, None, lease.fencing_token)
    layout = read_version(store, version)
    assert (layout.count, len(layout.segments)) == (100, 1)
    assert version.version == version_id_of(DB, version.model, version.dimensions, layout.segments)
    segment = layout.segments[0]
    assert segment.key == f"{segments_prefix(DB)}{segment.segment_id}/"  # of both parts (segment_identity)
    manifest = read_manifest(store, segment.key)
    assert (manifest.profile, manifest.collection, manifest.count) == ("quality", DB, 100)
    assert manifest.sha256 == segment.sha256
    assert store.get_json(pointer_key(DB))["version"] == version.version


def test_next_publish_builds_on_the_previous_version(store, ledger, lease, settings, make_delta):
    first = _publish(store, ledger, lease, settings, make_delta("d1", 100)).version
    second = _publish(store, ledger, lease, settings, make_delta("d2", 100, start=50),
                      make_delta("d3", 10, start=200))

    assert (second.total_embeddings, second.added_embeddings) == (160, 110)
    assert second.version.parent_version == first.version
    assert [v.version for v in ledger.list_versions(DB)] == [second.version.version, first.version]
    probe = ["line-00000", "line-00149", "line-00209", "line-00150", "absent"]
    assert ids_present(store, second.version, probe, settings) == {"line-00000", "line-00149", "line-00209"}
    assert ids_present(store, first, probe, settings) == {"line-00000"}


def test_rerun_with_the_same_sources_reports_the_same_publish(store, ledger, lease, settings, make_delta):
    sources = [make_delta("d1", 40), make_delta("d2", 20, start=40)]
    first = publish_next_version(store, ledger, lease, database=DB, sources=sources, settings=settings)
    keys = _version_keys(store)
    again = publish_next_version(store, ledger, lease, database=DB, sources=sources[::-1], settings=settings)

    assert again == first
    assert _version_keys(store) == keys
    assert len(ledger.list_versions(DB)) == 1


def test_stale_lease_is_refused_before_any_work(store, ledger, lease, settings, make_delta):
    current = _publish(store, ledger, lease, settings, make_delta("d1", 30)).version
    keys = _version_keys(store)
    assert ledger.release_lock(lease)
    newer = ledger.acquire_lock(DB, "writer-2", lease_seconds=3600)
    assert newer is not None

    with pytest.raises(StaleFencingTokenError):
        _publish(store, ledger, lease, settings, make_delta("d2", 30, start=30))
    assert ledger.get_published(DB) == current
    assert _version_keys(store) == keys


def test_lease_lost_during_the_build_refuses_the_publish_and_cleans_up(store, ledger, lease, settings,
                                                                       make_delta):
    current = _publish(store, ledger, lease, settings, make_delta("d1", 30)).version
    keys = _version_keys(store)
    pointer = store.get_bytes(pointer_key(DB))

    def lose_the_lock():  # another worker takes over while this one is uploading
        assert ledger.release_lock(lease)
        assert ledger.acquire_lock(DB, "writer-2", lease_seconds=3600) is not None

    store.before_upload[segments_prefix(DB)] = lose_the_lock
    with pytest.raises(StaleFencingTokenError):
        _publish(store, ledger, lease, settings, make_delta("d2", 30, start=30))
    assert ledger.get_published(DB) == current
    assert [v.version for v in ledger.list_versions(DB)] == [current.version]
    assert _version_keys(store) == keys
    assert store.get_bytes(pointer_key(DB)) == pointer


def test_pointer_moved_since_the_build_started_is_a_conflict(store, ledger, lease, settings, make_delta):
    v1 = _publish(store, ledger, lease, settings, make_delta("d1", 20)).version
    v2 = _publish(store, ledger, lease, settings, make_delta("d2", 20, start=20)).version
    keys = _version_keys(store)

    # While this publish (built on v2) uploads, someone rolls the pointer back to v1.
    store.before_upload[segments_prefix(DB)] = lambda: rollback(store, ledger, lease, database=DB,
                                                                version=v1.version)
    with pytest.raises(PointerConflictError):
        _publish(store, ledger, lease, settings, make_delta("d3", 20, start=40))
    assert ledger.get_published(DB).version == v1.version
    assert {v.version for v in ledger.list_versions(DB)} == {v1.version, v2.version}
    assert _version_keys(store) == keys


def test_sources_of_another_model_are_refused(store, ledger, lease, settings, make_delta):
    current = _publish(store, ledger, lease, settings, make_delta("d1", 10)).version
    with pytest.raises(ModelMismatchError, match="other-model"):
        _publish(store, ledger, lease, settings, make_delta("d2", 10, start=10, model="other-model"))
    assert ledger.get_published(DB) == current


def test_nothing_to_add_keeps_the_current_version(store, ledger, lease, settings, make_delta):
    current = _publish(store, ledger, lease, settings, make_delta("d1", 10)).version
    outcome = _publish(store, ledger, lease, settings)
    assert (outcome.version, outcome.total_embeddings, outcome.added_embeddings) == (current, 10, 0)
    assert len(ledger.list_versions(DB)) == 1


def test_published_records_keep_their_values(store, ledger, lease, settings, make_delta):
    source = make_delta("d1", 25, seed=3)
    _publish(store, ledger, lease, settings, source)
    version = ledger.get_published(DB)
    published = {i: (p.embeddings[k], p.metadatas[k], p.documents[k])
                 for p in iter_published_pages(store, version, settings) for k, i in enumerate(p.ids)}
    assert len(published) == version.count == 25
    vector, metadata, document = published["line-00007"]
    assert document == "text of line-00007"
    assert metadata == {"n": 7, "tag": "t1", "even": False}
    assert vector.shape == (16,)


# -- what fails after the pointer moved is on the outcome, and the publish stands -----------------
def test_a_failed_prune_is_on_the_outcome_and_the_publish_stands(tmp_path, ledger, lease, settings,
                                                                 make_delta):
    refusing = RefusingObjectStore(tmp_path / "objects", refuse_deletes=[versions_prefix(DB)])
    outcomes = [_publish(refusing, ledger, lease, settings, make_delta(f"d{i}", 5, start=10 * i))
                for i in range(settings.snapshot_versions_kept + 1)]

    assert [o.prune_error for o in outcomes[:-1]] == [None] * settings.snapshot_versions_kept
    last = outcomes[-1]
    assert last.prune_error.startswith("pruning lines after publish failed: PermissionError: ")
    assert refusing.refused[0] in last.prune_error and "\n" not in last.prune_error
    assert last.mirror_error is None
    assert ledger.get_published(DB) == last.version and last.total_embeddings == 20


def test_a_failed_pointer_mirror_is_on_the_outcome_and_the_publish_stands(tmp_path, ledger, lease, settings,
                                                                          make_delta):
    refusing = RefusingObjectStore(tmp_path / "objects", refuse_writes=[pointer_key(DB)])

    outcome = _publish(refusing, ledger, lease, settings, make_delta("d1", 5))

    assert outcome.mirror_error == (f"could not write {pointer_key(DB)}: PermissionError: [Errno 13] "
                                    f"Permission denied: '{pointer_key(DB)}'")
    assert outcome.prune_error is None
    assert ledger.get_published(DB) == outcome.version and not refusing.exists(pointer_key(DB))


def test_a_failed_plain_mirror_is_on_the_outcome_and_the_publish_stands(tmp_path, ledger, lease, settings,
                                                                        make_delta):
    plain = settings.model_copy(update={"snapshot_publish_plain": True})
    manifest = plain_prefix(DB) + PLAIN_MANIFEST
    refusing = RefusingObjectStore(tmp_path / "objects", refuse_writes=[manifest])

    outcome = _publish(refusing, ledger, lease, plain, make_delta("d1", 5))

    assert outcome.mirror_error.startswith(f"could not refresh the plain Chroma mirror {plain_prefix(DB)}: "
                                           "PermissionError: ")
    assert manifest in outcome.mirror_error and refusing.refused == [manifest]
    assert ledger.get_published(DB) == outcome.version
    assert refusing.get_json(pointer_key(DB))["version"] == outcome.version.version  # pointer mirror: fine
