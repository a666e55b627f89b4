"""write_snapshot / read_manifest / materialize against a real LocalObjectStore and real Chroma."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from snapshot_pages import DIMS, make_page, make_pages

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import iter_pages, materialize, read_manifest, write_snapshot
from embedding_ingest.snapshots.exceptions import DimensionMismatchError
from embedding_ingest.stores.exceptions import CorruptObjectError, ObjectNotFoundError

PREFIX = "lines/delta/lines/receipt_lines/d1/"


def _all_records(persist_dir: Path, collection: str) -> dict[str, tuple[np.ndarray, dict, str]]:
    out = {}
    for page in iter_pages(persist_dir, collection, page_size=64):
        for i, item_id in enumerate(page.ids):
            out[item_id] = (page.embeddings[i], page.metadatas[i], page.documents[i])
    return out


def test_round_trip_keeps_vectors_metadata_and_documents(store, tmp_path):
    pages = make_pages(250, per_page=100)
    manifest = write_snapshot(store, PREFIX, pages, collection="lines", dimensions=DIMS, model="m-1")

    assert (manifest.count, manifest.dimensions, manifest.model) == (250, DIMS, "m-1")
    assert manifest.profile == "cheap"
    # The archive key is content-addressed, so racing builds of one prefix never overwrite each other.
    assert manifest.archive_key == f"{PREFIX}snapshot-{manifest.sha256[:16]}.tar"
    assert sorted(i.key for i in store.list(PREFIX)) == sorted([PREFIX + "manifest.json",
                                                                manifest.archive_key])
    assert read_manifest(store, PREFIX) == manifest

    records = _all_records(materialize(store, PREFIX, tmp_path / "out"), "lines")
    expected = {item_id: (page.embeddings[i], page.metadatas[i], page.documents[i])
                for page in pages for i, item_id in enumerate(page.ids)}
    assert records.keys() == expected.keys()
    for item_id, (vector, metadata, document) in expected.items():
        np.testing.assert_allclose(records[item_id][0], vector, rtol=1e-6)
        assert records[item_id][1] == metadata
        assert records[item_id][2] == document


def test_rerun_returns_committed_manifest_without_rebuilding(store):
    first = write_snapshot(store, PREFIX, make_pages(20), collection="lines", dimensions=DIMS, model="m")

    def must_not_be_read():
        raise AssertionError("a committed snapshot was rebuilt")
        yield

    again = write_snapshot(store, PREFIX, must_not_be_read(), collection="lines", dimensions=DIMS, model="m")
    assert again == first


def test_repeated_ids_count_once_and_last_write_wins(store, tmp_path):
    first = make_page(["a", "b"], seed=1)
    second = make_page(["b", "c"], seed=2)
    manifest = write_snapshot(store, PREFIX, [first, second], collection="lines", dimensions=DIMS, model="m")
    assert manifest.count == 3
    records = _all_records(materialize(store, PREFIX, tmp_path / "out"), "lines")
    np.testing.assert_allclose(records["b"][0], second.embeddings[0], rtol=1e-6)


def test_wrong_width_is_refused_naming_the_record_and_nothing_is_committed(store):
    pages = [make_page(["ok-1"], dims=DIMS), make_page(["too-wide"], dims=DIMS + 1)]
    with pytest.raises(DimensionMismatchError, match="too-wide"):
        write_snapshot(store, PREFIX, pages, collection="lines", dimensions=DIMS, model="m")
    assert not store.exists(PREFIX + "manifest.json")


def test_nan_embedding_is_refused_naming_the_record(store):
    page = make_page(["fine", "broken"])
    page.embeddings[1, 3] = np.nan
    with pytest.raises(InvalidInputError, match="broken"):
        write_snapshot(store, PREFIX, [page], collection="lines", dimensions=DIMS, model="m")


def test_corrupt_archive_byte_is_detected_naming_the_key(store, tmp_path):
    archive = write_snapshot(store, PREFIX, make_pages(50), collection="lines", dimensions=DIMS,
                             model="m").archive_key
    data = bytearray(store.get_bytes(archive))
    data[len(data) // 2] ^= 0xFF
    store.put_bytes(archive, bytes(data))

    with pytest.raises(CorruptObjectError, match="sha256") as info:
        materialize(store, PREFIX, tmp_path / "out")
    assert info.value.key == archive
    assert not (tmp_path / "out").exists()


def test_truncated_archive_is_detected(store, tmp_path):
    archive = write_snapshot(store, PREFIX, make_pages(50), collection="lines", dimensions=DIMS,
                             model="m").archive_key
    data = store.get_bytes(archive)
    store.put_bytes(archive, data[: len(data) // 3])

    with pytest.raises(CorruptObjectError, match="bytes") as info:
        materialize(store, PREFIX, tmp_path / "out")
    assert info.value.key == archive


def test_missing_manifest_means_no_snapshot(store, tmp_path):
    write_snapshot(store, PREFIX, make_pages(5), collection="lines", dimensions=DIMS, model="m")
    store.delete(PREFIX + "manifest.json")
    with pytest.raises(ObjectNotFoundError) as info:
        materialize(store, PREFIX, tmp_path / "out")
    assert info.value.key == PREFIX + "manifest.json"


def test_garbled_manifest_is_corrupt_naming_the_key(store):
    store.put_bytes(PREFIX + "manifest.json", b'{"key": "x"}')
    with pytest.raises(CorruptObjectError) as info:
        read_manifest(store, PREFIX)
    assert info.value.key == PREFIX + "manifest.json"


def test_archive_with_path_traversal_is_refused(store, tmp_path):
    """An archive whose manifest checks out but whose members escape the destination."""
    manifest = write_snapshot(store, PREFIX, make_pages(5), collection="lines", dimensions=DIMS, model="m")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        payload = b"owned"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    evil = buffer.getvalue()
    store.put_bytes(manifest.archive_key, evil)
    forged = manifest.model_copy(update={"sha256": hashlib.sha256(evil).hexdigest(),
                                         "archive_bytes": len(evil)})
    store.put_json(PREFIX + "manifest.json", forged.model_dump(mode="json"))

    with pytest.raises(CorruptObjectError, match="unsafe"):
        materialize(store, PREFIX, tmp_path / "dest" / "out")
    assert not (tmp_path / "dest" / "escaped.txt").exists()
    assert not (tmp_path / "dest" / "out").exists()


def test_materialize_refuses_a_non_empty_destination(store, tmp_path):
    write_snapshot(store, PREFIX, make_pages(5), collection="lines", dimensions=DIMS, model="m")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not empty"):
        materialize(store, PREFIX, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_prefix_must_end_with_slash(store):
    with pytest.raises(InvalidInputError, match="ending in '/'"):
        write_snapshot(store, "no-slash", make_pages(1), collection="lines", dimensions=DIMS, model="m")


def test_nested_metadata_is_refused_naming_the_record(store):
    page = make_page(["plain", "nested"])
    page.metadatas[1]["bad"] = {"x": 1}
    with pytest.raises(InvalidInputError, match="'nested' metadata 'bad'"):
        write_snapshot(store, PREFIX, [page], collection="lines", dimensions=DIMS, model="m")
