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
    write_snapshot,
)
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
