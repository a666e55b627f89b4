"""Flat snapshots (records only, no index) for deltas and intermediates: same records out as in, a
repeated id keeps its last record, damage is reported by file, and a merge into Chroma reads them."""

from __future__ import annotations

import numpy as np
import pytest
from snapshot_pages import DIMS, make_page, make_pages

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import iter_pages, materialize, merge_snapshots, write_snapshot
from embedding_ingest.snapshots.exceptions import DimensionMismatchError
from embedding_ingest.snapshots.flat import EMBEDDINGS, RECORDS, is_flat
from embedding_ingest.stores.exceptions import CorruptObjectError


def _records(persist_dir, collection="lines", page_size=1000) -> dict[str, tuple]:
    out = {}
    for page in iter_pages(persist_dir, collection, page_size):
        for item_id, vector, doc, meta in zip(page.ids, page.embeddings, page.documents, page.metadatas,
                                              strict=True):
            out[item_id] = (vector, doc, meta)
    return out


def _flat(store, prefix, pages):
    return write_snapshot(store, prefix, pages, collection="lines", dimensions=DIMS, model="m",
                          profile="flat")


def test_flat_snapshot_round_trips_every_record(store, tmp_path):
    pages = make_pages(250, per_page=100)
    manifest = _flat(store, "d/one/", pages)
    assert (manifest.profile, manifest.count) == ("flat", 250)
    out = materialize(store, "d/one/", tmp_path / "out")
    assert is_flat(out)
    got = _records(out, page_size=64)
    assert len(got) == 250
    for page in pages:
        for i, item_id in enumerate(page.ids):
            vector, doc, meta = got[item_id]
            np.testing.assert_array_equal(vector, page.embeddings[i])
            assert (doc, meta) == (page.documents[i], page.metadatas[i])


def test_awkward_record_values_round_trip_exactly(store, tmp_path):
    """Records are written with orjson where it is exact (fast_json): a NaN or infinite metadata number
    (orjson would write null), non-ASCII text and a document holding the word null come back as they
    went in."""
    page = make_page(["nan", "text"], seed=3)
    page.metadatas[0]["score"] = float("nan")
    page.metadatas[0]["peak"] = float("inf")
    page.documents[1] = "café, total: null \u2028 ok"
    _flat(store, "d/odd/", [page])
    got = _records(materialize(store, "d/odd/", tmp_path / "out"))
    assert np.isnan(got["nan"][2]["score"]) and got["nan"][2]["peak"] == float("inf")
    assert got["text"][1:] == ("café, total: null \u2028 ok", page.metadatas[1])


def test_a_repeated_id_keeps_its_last_record(store, tmp_path):
    first = make_page(["a", "b", "c"], seed=1)
    again = make_page(["b", "d", "b"], seed=2)
    assert _flat(store, "d/rep/", [first, again]).count == 4
    got = _records(materialize(store, "d/rep/", tmp_path / "out"))
    assert sorted(got) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(got["b"][0], again.embeddings[2])
    np.testing.assert_array_equal(got["a"][0], first.embeddings[0])


def test_bad_record_is_refused_by_id(store):
    page = make_page(["ok", "bad"])
    page.embeddings[1, 3] = np.nan
    with pytest.raises(InvalidInputError, match="'bad'"):
        _flat(store, "d/nan/", [page])
    with pytest.raises(DimensionMismatchError):
        _flat(store, "d/wide/", [make_page(["w"], dims=DIMS + 1)])


def test_damaged_flat_directories_are_reported(store, tmp_path):
    _flat(store, "d/x/", make_pages(30))
    short = materialize(store, "d/x/", tmp_path / "short")
    with (short / EMBEDDINGS).open("r+b") as fh:
        fh.truncate(100)
    with pytest.raises(CorruptObjectError, match="float32"):
        list(iter_pages(short, "lines"))
    missing = materialize(store, "d/x/", tmp_path / "missing")
    (missing / RECORDS).write_text("\n".join((missing / RECORDS).read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(CorruptObjectError, match="bad record"):
        list(iter_pages(missing, "lines"))
    with pytest.raises(InvalidInputError, match="'words'"):
        list(iter_pages(materialize(store, "d/x/", tmp_path / "other"), "words"))


def test_flat_merge_counts_unique_ids_and_chroma_merge_reads_flat_sources(store, tmp_path):
    _flat(store, "d/a/", make_pages(120, prefix="a"))
    _flat(store, "d/b/", [make_page([f"a-{i:05d}" for i in range(20)] + ["b-1"], seed=5)])
    merged = merge_snapshots(store, ["d/a/", "d/b/"], "i/flat/", collection="lines", profile="flat")
    assert (merged.profile, merged.count) == ("flat", 121)
    indexed = merge_snapshots(store, ["d/a/", "d/b/"], "i/cheap/", collection="lines", profile="cheap")
    assert indexed.count == 121
    flat_records = _records(materialize(store, "i/flat/", tmp_path / "f"))
    chroma_records = _records(materialize(store, "i/cheap/", tmp_path / "c"))
    assert flat_records.keys() == chroma_records.keys()
    for item_id, (vector, doc, meta) in flat_records.items():
        np.testing.assert_allclose(chroma_records[item_id][0], vector, rtol=1e-6)
        assert chroma_records[item_id][1:] == (doc, meta)


def test_metadata_updates_travel_in_flat_deltas_and_merge_newest_first(store, tmp_path):
    """Issue 23: a delta's metadata updates (metadata.jsonl) survive packing and a flat merge, where the
    newest metadata_version per id wins whatever the order of the sources; a damaged line is named."""
    from embedding_ingest.snapshots.metadata_update import FILE_NAME, MetadataUpdates, read_updates

    def delta(prefix, entries):
        updates = MetadataUpdates()
        for item_id, version, merchant in entries:
            updates.add(item_id, version, {"merchant_name": merchant, "text": "not living: dropped"})
        return write_snapshot(store, prefix, [], collection="lines", dimensions=DIMS, model="m",
                              profile="flat", metadata_updates=updates)

    newer = delta("deltas/newer/", [("a", 3, "A3"), ("b", 1, "B1")])
    older = delta("deltas/older/", [("a", 2, "A2"), ("c", 1, "C1")])
    assert (newer.metadata_updates, newer.count, newer.deletions) == (2, 0, 0)
    merged = merge_snapshots(store, [newer.key, older.key], "intermediate/m/", collection="lines",
                             profile="flat")
    assert merged.metadata_updates == 3
    found = read_updates(materialize(store, merged.key, tmp_path / "merged"))
    assert found.entries == {"a": (3, {"merchant_name": "A3"}), "b": (1, {"merchant_name": "B1"}),
                             "c": (1, {"merchant_name": "C1"})}
    (tmp_path / "merged" / FILE_NAME).write_text('{"id": "a", "metadata_version": "x"}\n')
    with pytest.raises(CorruptObjectError, match="bad metadata update at line 1"):
        read_updates(tmp_path / "merged")
