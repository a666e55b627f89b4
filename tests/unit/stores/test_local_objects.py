"""LocalObjectStore specifics beyond the shared contract: key safety, layout, streaming, pickling."""

from __future__ import annotations

import os
import pickle
import tracemalloc
from pathlib import Path

import pytest

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.exceptions import PreconditionFailedError
from embedding_ingest.stores.local_objects import LocalObjectStore


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.mark.parametrize("key", ["/etc/passwd", "../escape", "a/../../escape", "a//b", "a/./b", "",
                                 "trailing/", ".objstore/lock", "back\\slash"])
def test_unsafe_keys_are_refused_naming_the_key(store: LocalObjectStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        store.put_bytes(key, b"x")
    assert repr(key) in str(caught.value)
    with pytest.raises(InvalidInputError):
        store.get_bytes(key)
    assert not (tmp_path / "escape").exists()


def test_keys_map_to_files_under_root(store: LocalObjectStore, tmp_path: Path) -> None:
    store.put_bytes("snapshots/lines/v1/manifest.json", b"{}")
    assert (tmp_path / "objects" / "snapshots/lines/v1/manifest.json").read_bytes() == b"{}"
    assert store.location == str((tmp_path / "objects").resolve())


def test_internal_files_are_never_listed(store: LocalObjectStore) -> None:
    store.put_bytes("a", b"1")
    assert [info.key for info in store.list("")] == ["a"]
    assert [info.key for info in store.list(".")] == []


def test_a_key_used_as_folder_cannot_also_be_an_object(store: LocalObjectStore) -> None:
    store.put_bytes("deltas/run-1/part", b"1")
    with pytest.raises(InvalidInputError, match="deltas/run-1"):
        store.put_bytes("deltas/run-1", b"2")
    store.put_bytes("file", b"1")
    with pytest.raises(InvalidInputError, match="file/child"):
        store.put_bytes("file/child", b"2")
    assert store.get_bytes("deltas/run-1/part") == b"1" and store.get_bytes("file") == b"1"


def test_failed_conditional_put_leaves_no_temp_files(store: LocalObjectStore, tmp_path: Path) -> None:
    store.put_bytes("k", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailedError):
        store.put_bytes("k", b"2", if_none_match=True)
    assert list((tmp_path / "objects" / ".objstore" / "tmp").iterdir()) == []


def test_delete_drops_emptied_folders_but_keeps_root(store: LocalObjectStore, tmp_path: Path) -> None:
    store.put_bytes("a/b/c/obj", b"1")
    store.put_bytes("a/keep", b"1")
    store.delete("a/b/c/obj")
    root = tmp_path / "objects"
    assert not (root / "a" / "b").exists() and (root / "a" / "keep").exists()
    store.delete("a/keep")
    assert root.is_dir() and not (root / "a").exists()


def test_etag_is_a_content_hash_stable_across_instances(store: LocalObjectStore) -> None:
    first = store.put_bytes("one", b"same bytes")
    second = store.put_bytes("two", b"same bytes")
    reopened = pickle.loads(pickle.dumps(store))
    assert first == second == reopened.head("one").etag
    assert reopened.get_bytes("two") == b"same bytes" and reopened.location == store.location


def test_large_files_are_streamed_not_loaded(store: LocalObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as fh:
        for _ in range(16):
            fh.write(os.urandom(1024 * 1024))
    tracemalloc.start()
    try:
        store.upload_file("big/archive.tar", source)
        store.download_file("big/archive.tar", tmp_path / "back" / "big.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"peak Python allocation {peak} bytes for a 16 MB file"
    assert (tmp_path / "back" / "big.bin").read_bytes() == source.read_bytes()


def test_upload_of_missing_local_file_names_it(store: LocalObjectStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="absent.tar"):
        store.upload_file("k", tmp_path / "absent.tar")
    assert store.head("k") is None


def test_put_refuses_non_bytes(store: LocalObjectStore) -> None:
    with pytest.raises(InvalidInputError, match="'k'"):
        store.put_bytes("k", "text, not bytes")  # type: ignore[arg-type]


def test_a_new_store_answers_head_from_the_recorded_etag_and_never_from_a_stale_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new process (every step) gets the etag recorded at commit, without re-reading the object; an
    object changed behind the store's back (same key, other content) is hashed again, never misreported."""
    import hashlib

    from embedding_ingest.stores import local_objects

    etag = LocalObjectStore(tmp_path / "objects").put_bytes("segments/a/archive.tar", b"first")
    path = tmp_path / "objects" / "segments" / "a" / "archive.tar"

    def no_reading(_path: Path) -> str:
        raise AssertionError(f"head() re-read {_path}")

    with monkeypatch.context() as patch:
        patch.setattr(local_objects, "_hash_file", no_reading)
        assert LocalObjectStore(tmp_path / "objects").head("segments/a/archive.tar").etag == etag

    replacement = tmp_path / "replacement"
    replacement.write_bytes(b"second, longer")
    os.replace(replacement, path)  # not through the store: its record is stale now
    fresh = LocalObjectStore(tmp_path / "objects").head("segments/a/archive.tar")
    assert fresh.etag == hashlib.sha256(b"second, longer").hexdigest() != etag


def test_an_md5_etag_recorded_before_sha256_etags_still_guards_a_compare_and_swap(
        store: LocalObjectStore, tmp_path: Path) -> None:
    """Etags were md5s until issue 21 and stay recorded so for objects written then: a caller holding
    one can still replace the object conditionally, and a stale one is still refused."""
    import hashlib

    store.put_bytes("ptr", b"v1")
    path = tmp_path / "objects" / "ptr"
    st = path.stat()
    legacy = hashlib.md5(b"v1", usedforsecurity=False).hexdigest()
    store._etag_record("ptr").write_text(f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {legacy}")
    assert LocalObjectStore(tmp_path / "objects").head("ptr").etag == legacy
    with pytest.raises(PreconditionFailedError):
        store.put_bytes("ptr", b"v2", if_match=hashlib.md5(b"other", usedforsecurity=False).hexdigest())
    new = store.put_bytes("ptr", b"v2", if_match=legacy)
    assert new == hashlib.sha256(b"v2").hexdigest() == store.head("ptr").etag


def test_a_moved_file_with_its_sha256_is_not_read_again(store: LocalObjectStore, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest its writer computed is the etag (issue 21: a segment archive is hashed once)."""
    import hashlib

    from embedding_ingest.stores import local_objects

    (tmp_path / "part.tar").write_bytes(b"vectors")
    digest = hashlib.sha256(b"vectors").hexdigest()

    def no_reading(_path: Path, like: str | None = None) -> str:
        raise AssertionError(f"upload re-read {_path}")

    monkeypatch.setattr(local_objects, "_hash_file", no_reading)
    assert store.upload_file("p/part.tar", tmp_path / "part.tar", move=True, sha256=digest) == digest
    assert store.get_bytes("p/part.tar") == b"vectors" and not (tmp_path / "part.tar").exists()
