"""The delta / publish contract of issue 10 (snapshots/revisions.py), with a real SqliteLedger, real
local objects and real Chroma: deltas carry revisions and deletions, merges keep the newer entry of an
id, and publish replaces and deletes exactly once with published = previous + added - deleted."""

from __future__ import annotations

import numpy as np
import pytest
from snapshot_pages import DIMS

from embedding_ingest.snapshots import (
    RecordPage,
    iter_published_pages,
    merge_snapshots,
    publish_next_version,
    read_manifest,
    read_version,
    write_snapshot,
)
from embedding_ingest.snapshots.metadata_update import MetadataUpdates
from embedding_ingest.snapshots.revisions import revision_of

DB = "lines"
MODEL = "test-model-16"


def _delta(store, name: str, ids: list[str], *, revision: str, deleted: list[str] = (), seed: int = 0,
           profile: str = "flat") -> str:
    rng = np.random.default_rng(seed)
    page = RecordPage(ids=list(ids), embeddings=rng.standard_normal((len(ids), DIMS)).astype(np.float32),
                      metadatas=[{"revision": revision, "seed": seed} for _ in ids],
                      documents=[f"{item_id} v{seed}" for item_id in ids])
    prefix = f"{DB}/delta/{DB}/receipt_lines/{name}/"
    write_snapshot(store, prefix, [page] if ids else [], collection=DB, dimensions=DIMS, model=MODEL,
                   profile=profile, deletions=dict.fromkeys(deleted, revision))
    return prefix


def _published(store, ledger, settings) -> dict[str, tuple[str, str]]:
    """id -> (document, revision) of the current version."""
    version = ledger.get_published(DB)
    found = {}
    for page in iter_published_pages(store, version, settings):
        for item_id, document, metadata in zip(page.ids, page.documents, page.metadatas, strict=True):
            assert item_id not in found, f"{item_id} is in two segments"
            found[item_id] = (document, metadata["revision"])
    return found


def _publish(store, ledger, lease, settings, *sources):
    return publish_next_version(store, ledger, lease, database=DB, sources=list(sources), settings=settings)


R1, R2, R3 = (revision_of(t, "batch") for t in (1000.0, 2000.0, 3000.0))


def test_a_delta_carries_its_deletions_and_a_merge_keeps_the_newer_entry_of_each_id(store):
    old = _delta(store, "old", ["a", "b", "c"], revision=R1, seed=1)
    new = _delta(store, "new", ["b"], revision=R2, deleted=["c"], seed=2)
    stale = _delta(store, "stale", ["a"], revision=R1, deleted=["b"], seed=3)
    assert (read_manifest(store, new).count, read_manifest(store, new).deletions) == (1, 1)

    merged = merge_snapshots(store, [old, new, stale], f"{DB}/intermediate/x/", collection=DB, profile="flat")

    # b: the R2 record beats the R1 record and the R1 deletion; c: the R2 deletion beats the R1 record;
    # a: two R1 records, the later source wins the tie.
    assert (merged.count, merged.deletions) == (2, 1)
    assert merged.count + merged.deletions + merged.superseded == 3 + 2 + 2, "every entry accounted for"


def test_publish_replaces_changed_ids_and_deletes_vanished_ones_exactly_once(store, ledger, lease, settings):
    first = _publish(store, ledger, lease, settings, _delta(store, "d1", ["a", "b", "c", "d"], revision=R1))
    assert first.total_embeddings == 4

    update = _delta(store, "d2", ["b", "e"], revision=R2, deleted=["c"], seed=2)
    second = _publish(store, ledger, lease, settings, update)

    assert (second.total_embeddings, second.replaced_embeddings, second.deleted_embeddings) == (4, 1, 1)
    assert second.total_embeddings == first.total_embeddings + 1 - 1  # previous + added - deleted
    published = _published(store, ledger, settings)
    assert set(published) == {"a", "b", "d", "e"}
    assert published["b"] == ("b v2", R2), "the changed id carries its new document and revision"
    assert published["a"] == ("a v0", R1)

    again = _publish(store, ledger, lease, settings, update)  # a rerun of the same publish
    assert again.version == second.version
    assert _published(store, ledger, settings) == published


def test_an_older_delta_arriving_late_changes_nothing(store, ledger, lease, settings):
    _publish(store, ledger, lease, settings, _delta(store, "d1", ["a", "b"], revision=R1))
    _publish(store, ledger, lease, settings, _delta(store, "d3", ["a"], revision=R3, deleted=["b"], seed=3))
    before = _published(store, ledger, settings)
    version = ledger.get_published(DB)

    late = _publish(store, ledger, lease, settings,
                    _delta(store, "d2", ["a", "b"], revision=R2, seed=2))

    assert late.version == version, "nothing newer arrived, so no new version"
    assert _published(store, ledger, settings) == before == {"a": ("a v3", R3)}


def test_a_deleted_id_that_comes_back_later_is_published_again(store, ledger, lease, settings):
    _publish(store, ledger, lease, settings, _delta(store, "d1", ["a", "b"], revision=R1))
    _publish(store, ledger, lease, settings, _delta(store, "d2", [], revision=R2, deleted=["a", "b"]))
    assert ledger.get_published(DB).count == 0

    back = _publish(store, ledger, lease, settings, _delta(store, "d3", ["a"], revision=R3, seed=3))

    assert (back.total_embeddings, back.deleted_embeddings) == (1, 0)
    assert _published(store, ledger, settings) == {"a": ("a v3", R3)}


@pytest.mark.parametrize("profile", ["cheap", "quality"])
def test_only_flat_snapshots_carry_deletions(store, profile):
    from embedding_ingest.exceptions import InvalidInputError
    with pytest.raises(InvalidInputError, match="only flat snapshots"):
        _delta(store, "bad", ["a"], revision=R1, deleted=["b"], profile=profile)


def test_a_re_embedded_record_keeps_the_newer_published_living_metadata(store, ledger, lease, settings):
    """Issue 23: newest metadata wins however it arrives. A record re-embedded with an older
    metadata_version than the published one (a metadata update overtook it) goes in with its new
    document and vector but keeps the published living keys and version; one whose version is newer
    carries its own. The metadata update's own rewrite uploads only the segment's records."""
    def delta(name: str, revision: str, version: int, merchant: str, seed: int) -> str:
        page = RecordPage(ids=["a", "b"], embeddings=np.full((2, DIMS), seed, dtype=np.float32),
                          metadatas=[{"revision": revision, "metadata_version": version,
                                      "merchant_name": merchant, "seed": seed}] * 2,
                          documents=[f"a v{seed}", f"b v{seed}"])
        prefix = f"{DB}/delta/{DB}/receipt_lines/{name}/"
        write_snapshot(store, prefix, [page], collection=DB, dimensions=DIMS, model=MODEL, profile="flat")
        return prefix

    first = _publish(store, ledger, lease, settings, delta("d1", R1, 1, "Old", 1)).version
    relabel = MetadataUpdates()
    relabel.add("a", 3, {"merchant_name": "New", "label_status": "validated"})
    update = f"{DB}/delta/{DB}/receipt_lines/m1/"
    write_snapshot(store, update, [], collection=DB, dimensions=DIMS, model=MODEL, profile="flat",
                   metadata_updates=relabel)
    vectors = f"{DB}/snapshot/vectors/"
    store.before_upload[vectors] = lambda: pytest.fail("a metadata-only rewrite uploaded vectors")
    relabelled = _publish(store, ledger, lease, settings, update).version
    assert store.before_upload.pop(vectors)  # only the records were packed and uploaded (issue 21 split)
    (before,), (after,) = read_version(store, first).segments, read_version(store, relabelled).segments
    assert after.key != before.key and after.vectors_sha256 == before.vectors_sha256 is not None

    outcome = _publish(store, ledger, lease, settings, delta("d2", R2, 2, "Mid", 2))

    assert outcome.replaced_embeddings == 2
    version = ledger.get_published(DB)
    found = {item_id: (document, metadata) for page in iter_published_pages(store, version, settings)
             for item_id, document, metadata in zip(page.ids, page.documents, page.metadatas, strict=True)}
    a_doc, a_meta = found["a"]
    b_doc, b_meta = found["b"]
    assert (a_doc, a_meta["revision"], a_meta["seed"]) == ("a v2", R2, 2)  # the new record went in
    assert (a_meta["merchant_name"], a_meta["label_status"], a_meta["metadata_version"]) == (
        "New", "validated", 3)
    assert (b_doc, b_meta["merchant_name"], b_meta["metadata_version"]) == ("b v2", "Mid", 2)
    assert "label_status" not in b_meta
