"""merge_snapshots: counts in = counts out, idempotent re-runs, both build paths, refused mixes."""

from __future__ import annotations

import numpy as np
import pytest
from snapshot_pages import DIMS, make_page, make_pages

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import chroma_io, iter_pages, materialize, merge_snapshots, write_snapshot
from embedding_ingest.snapshots.exceptions import ModelMismatchError, SnapshotConflictError
from embedding_ingest.stores.exceptions import ObjectNotFoundError


def _write(store, prefix, pages, model="m", profile="cheap", collection="lines"):
    return write_snapshot(store, prefix, pages, collection=collection, dimensions=DIMS, model=model,
                          profile=profile)


def _contents(store, prefix, tmp_path, collection="lines") -> dict[str, np.ndarray]:
    out = {}
    for page in iter_pages(materialize(store, prefix, tmp_path / prefix.replace("/", "_")), collection):
        out.update(zip(page.ids, page.embeddings, strict=True))
    return out


@pytest.fixture
def three_sources(store):
    _write(store, "i/c0/", make_pages(120, prefix="a"))
    _write(store, "i/c1/", make_pages(80, prefix="b"))
    # Overlaps c0 on a-00000..a-00019: a merge keeps one record per id.
    _write(store, "i/c2/", [make_page([f"a-{i:05d}" for i in range(20)] + ["c-1"], seed=9)])
    return ["i/c0/", "i/c1/", "i/c2/"]


def test_merge_holds_each_unique_id_once(store, three_sources, tmp_path):
    merged = merge_snapshots(store, three_sources, "i/merged/", collection="lines")
    assert merged.count == 120 + 80 + 1
    assert merged.sources == sorted(three_sources)
    records = _contents(store, "i/merged/", tmp_path)
    assert len(records) == 201
    assert {"a-00000", "b-00079", "c-1"} <= records.keys()


def test_merge_twice_changes_nothing(store, three_sources, tmp_path):
    first = merge_snapshots(store, three_sources, "i/merged/", collection="lines")
    objects_before = {info.key: info.etag for info in store.list("i/merged/")}
    second = merge_snapshots(store, list(reversed(three_sources)), "i/merged/", collection="lines")
    assert second == first
    assert {info.key: info.etag for info in store.list("i/merged/")} == objects_before


def test_fast_and_slow_paths_give_the_same_records(store, three_sources, tmp_path):
    """Same profile as the largest source => copy it; other profile => build from empty."""
    fast = merge_snapshots(store, three_sources, "i/fast/", collection="lines", profile="cheap")
    slow = merge_snapshots(store, three_sources, "i/slow/", collection="lines", profile="quality")
    assert fast.count == slow.count == 201
    a, b = _contents(store, "i/fast/", tmp_path), _contents(store, "i/slow/", tmp_path)
    assert a.keys() == b.keys()
    for item_id in a:
        np.testing.assert_allclose(a[item_id], b[item_id], rtol=1e-6)
    # The fast path really started from the largest source: it kept that collection's identity.
    largest = _collection_id(store, "i/c0/", tmp_path)
    assert _collection_id(store, "i/fast/", tmp_path) == largest
    assert _collection_id(store, "i/slow/", tmp_path) != largest


def _collection_id(store, prefix, tmp_path):
    persist_dir = materialize(store, prefix, tmp_path / ("id_" + prefix.replace("/", "_")))
    with chroma_io.open_client(persist_dir) as c:
        return chroma_io.get_collection(c, "lines").id


def test_merge_into_a_prefix_holding_another_merge_is_refused(store, three_sources):
    merge_snapshots(store, three_sources[:2], "i/merged/", collection="lines")
    with pytest.raises(SnapshotConflictError, match="i/merged/"):
        merge_snapshots(store, three_sources, "i/merged/", collection="lines")


def test_sources_of_different_models_are_refused(store):
    _write(store, "i/x/", make_pages(5, prefix="x"), model="text-embedding-3-small")
    _write(store, "i/y/", make_pages(5, prefix="y"), model="local-hash")
    with pytest.raises(ModelMismatchError, match="i/y/"):
        merge_snapshots(store, ["i/x/", "i/y/"], "i/merged/", collection="lines")
    assert not store.exists("i/merged/manifest.json")


def test_missing_source_names_its_manifest(store, three_sources):
    with pytest.raises(ObjectNotFoundError, match="i/nope/manifest.json"):
        merge_snapshots(store, [*three_sources, "i/nope/"], "i/merged/", collection="lines")


def test_merge_needs_a_source(store):
    with pytest.raises(InvalidInputError, match="at least one source"):
        merge_snapshots(store, [], "i/merged/", collection="lines")
