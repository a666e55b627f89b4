"""What every ObjectStore adapter must do, observed only through the port."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from embedding_ingest.stores.exceptions import (
    CorruptObjectError,
    ObjectNotFoundError,
    PreconditionFailedError,
)
from embedding_ingest.stores.ports import ObjectStore


def _increment_counter(store: ObjectStore, key: str, times: int) -> int:
    """Compare-and-swap increments; returns how many CAS attempts lost (and were retried)."""
    lost = 0
    for _ in range(times):
        while True:
            info = store.head(key)
            assert info is not None
            value = int(store.get_bytes(key))
            # Between head and get another writer may have won; then the etag is stale and the
            # put below must be refused.
            try:
                store.put_bytes(key, str(value + 1).encode(), if_match=info.etag)
                break
            except PreconditionFailedError:
                lost += 1
    return lost


def _create_all(store: ObjectStore, keys: list[str], me: str) -> list[str]:
    won = []
    for key in keys:
        try:
            store.put_bytes(key, me.encode(), if_none_match=True)
            won.append(key)
        except PreconditionFailedError:
            pass
    return won


# -- basic round trips ----------------------------------------------------------------------------
def test_put_get_head_round_trip(object_store: ObjectStore) -> None:
    etag = object_store.put_bytes("deltas/a/one.bin", b"\x00\x01payload")
    assert object_store.get_bytes("deltas/a/one.bin") == b"\x00\x01payload"
    info = object_store.head("deltas/a/one.bin")
    assert info is not None
    assert (info.key, info.size, info.etag) == ("deltas/a/one.bin", 9, etag)
    assert object_store.exists("deltas/a/one.bin")


def test_overwrite_changes_content_and_etag(object_store: ObjectStore) -> None:
    first = object_store.put_bytes("k.txt", b"first")
    second = object_store.put_bytes("k.txt", b"second")
    assert first != second
    assert object_store.get_bytes("k.txt") == b"second"


def test_json_helpers_round_trip_and_reject_corrupt_json(object_store: ObjectStore) -> None:
    object_store.put_json("m/manifest.json", {"b": [1, 2], "a": None})
    assert object_store.get_json("m/manifest.json") == {"a": None, "b": [1, 2]}
    object_store.put_bytes("m/broken.json", b"{not json")
    with pytest.raises(CorruptObjectError, match="m/broken.json"):
        object_store.get_json("m/broken.json")


def test_missing_key_errors_name_the_key(object_store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError, match="nowhere/missing.json") as caught:
        object_store.get_bytes("nowhere/missing.json")
    assert caught.value.key == "nowhere/missing.json"
    with pytest.raises(ObjectNotFoundError, match="nowhere/missing.tar"):
        object_store.download_file("nowhere/missing.tar", tmp_path / "out.tar")
    assert not (tmp_path / "out.tar").exists()
    assert object_store.head("nowhere/missing.json") is None
    assert not object_store.exists("nowhere/missing.json")


def test_delete_is_idempotent(object_store: ObjectStore) -> None:
    object_store.put_bytes("x/y", b"1")
    object_store.delete("x/y")
    object_store.delete("x/y")
    assert object_store.head("x/y") is None


# -- listing --------------------------------------------------------------------------------------
def test_list_by_prefix_is_ordered_and_exact(object_store: ObjectStore) -> None:
    for key in ["snap/b/2", "snap/a/1", "snapshot/x", "snap/a/0", "other/z"]:
        object_store.put_bytes(key, key.encode())
    assert [i.key for i in object_store.list("snap/")] == ["snap/a/0", "snap/a/1", "snap/b/2"]
    assert [i.key for i in object_store.list("snap")] == ["snap/a/0", "snap/a/1", "snap/b/2",
                                                          "snapshot/x"]
    assert [i.key for i in object_store.list("snap/a/")] == ["snap/a/0", "snap/a/1"]
    assert [i.key for i in object_store.list("")] == sorted(
        ["snap/b/2", "snap/a/1", "snapshot/x", "snap/a/0", "other/z"])
    assert list(object_store.list("absent/")) == []
    listed = {i.key: i for i in object_store.list("snap/a/")}
    assert listed["snap/a/0"] == object_store.head("snap/a/0")


def test_delete_prefix_removes_only_that_prefix(object_store: ObjectStore) -> None:
    for key in ["v/1/a", "v/1/b", "v/10/a", "v/2/a"]:
        object_store.put_bytes(key, b"x")
    assert object_store.delete_prefix("v/1/") == 2
    assert [i.key for i in object_store.list("v/")] == ["v/10/a", "v/2/a"]


# -- conditional puts -----------------------------------------------------------------------------
def test_create_if_absent_second_writer_loses(object_store: ObjectStore) -> None:
    object_store.put_bytes("pointer.json", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailedError, match="pointer.json"):
        object_store.put_bytes("pointer.json", b"second", if_none_match=True)
    assert object_store.get_bytes("pointer.json") == b"first"


def test_compare_and_swap_refuses_stale_etag(object_store: ObjectStore) -> None:
    v1 = object_store.put_bytes("ptr", b"v1")
    v2 = object_store.put_bytes("ptr", b"v2", if_match=v1)
    with pytest.raises(PreconditionFailedError, match="ptr"):
        object_store.put_bytes("ptr", b"late writer", if_match=v1)
    assert object_store.get_bytes("ptr") == b"v2"
    assert object_store.head("ptr").etag == v2


def test_compare_and_swap_on_absent_key_is_refused(object_store: ObjectStore) -> None:
    with pytest.raises(PreconditionFailedError):
        object_store.put_bytes("never-written", b"x", if_match="0123456789abcdef0123456789abcdef")
    assert object_store.head("never-written") is None


def test_create_if_absent_races_between_threads_have_one_winner_per_key(
        object_store: ObjectStore) -> None:
    keys = [f"race/{n:02d}" for n in range(20)]
    start = threading.Barrier(4)

    def contender(me: str) -> list[str]:
        start.wait()
        return _create_all(object_store, keys, me)

    with ThreadPoolExecutor(4) as pool:
        wins = dict(zip("ABCD", pool.map(contender, "ABCD"), strict=True))
    winners_per_key = {key: [w for w, won in wins.items() if key in won] for key in keys}
    assert all(len(w) == 1 for w in winners_per_key.values()), winners_per_key
    for key, (winner,) in winners_per_key.items():
        assert object_store.get_bytes(key) == winner.encode()


def test_compare_and_swap_counter_from_threads_loses_no_update(object_store: ObjectStore) -> None:
    object_store.put_bytes("counter", b"0")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: _increment_counter(object_store, "counter", 10), range(4)))
    assert int(object_store.get_bytes("counter")) == 40


def test_conditional_puts_across_processes(object_store: ObjectStore, run_in_processes) -> None:
    object_store.put_bytes("counter", b"0")
    run_in_processes(object_store, _increment_counter, [("counter", 15), ("counter", 15)])
    assert int(object_store.get_bytes("counter")) == 30

    keys = [f"proc-race/{n:02d}" for n in range(20)]
    wins = run_in_processes(object_store, _create_all, [(keys, "P"), (keys, "Q")])
    assert sorted(wins[0] + wins[1]) == keys  # every key created exactly once
    for key in keys:
        assert object_store.get_bytes(key) == (b"P" if key in wins[0] else b"Q")


# -- streaming files ------------------------------------------------------------------------------
def _write_random_file(path: Path, megabytes: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        for _ in range(megabytes):
            block = os.urandom(1024 * 1024)
            fh.write(block)
            digest.update(block)
    return digest.hexdigest()


def test_upload_and_download_multi_megabyte_file(object_store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "snapshot.tar"
    expected = _write_random_file(source, 6)
    etag = object_store.upload_file("snapshots/v1/snapshot.tar", source)
    info = object_store.head("snapshots/v1/snapshot.tar")
    assert info is not None and info.size == 6 * 1024 * 1024 and info.etag == etag
    dest = tmp_path / "restored" / "snapshot.tar"
    object_store.download_file("snapshots/v1/snapshot.tar", dest)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == expected


def test_upload_moving_the_file_in(object_store: ObjectStore, tmp_path: Path) -> None:
    """move=True (a segment archive given up by its builder, with the sha256 it hashed while writing
    it): the object holds the bytes with the etag a copy would have had, the local file is gone, and a
    later edit of a file at that path cannot reach the stored object."""
    (tmp_path / "copied").write_bytes(b"archive bytes")
    (tmp_path / "moved").write_bytes(b"archive bytes")
    copied = object_store.upload_file("parts/copied.tar", tmp_path / "copied")
    moved = object_store.upload_file("parts/moved.tar", tmp_path / "moved", if_none_match=True, move=True,
                                     sha256=hashlib.sha256(b"archive bytes").hexdigest())
    assert moved == copied and not (tmp_path / "moved").exists()
    (tmp_path / "moved").write_bytes(b"another file at the same path")
    assert object_store.get_bytes("parts/moved.tar") == b"archive bytes"
    assert (tmp_path / "copied").read_bytes() == b"archive bytes"  # a plain upload keeps its file


def test_upload_if_absent_does_not_replace(object_store: ObjectStore, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"original")
    (tmp_path / "b").write_bytes(b"replacement")
    object_store.upload_file("once/archive", tmp_path / "a", if_none_match=True)
    with pytest.raises(PreconditionFailedError, match="once/archive"):
        object_store.upload_file("once/archive", tmp_path / "b", if_none_match=True)
    assert object_store.get_bytes("once/archive") == b"original"


def test_download_replaces_an_existing_file_whole(object_store: ObjectStore, tmp_path: Path) -> None:
    object_store.put_bytes("doc", b"new content")
    dest = tmp_path / "doc"
    dest.write_bytes(b"old content that is longer than the new one")
    object_store.download_file("doc", dest)
    assert dest.read_bytes() == b"new content"


def test_a_fresh_instance_at_its_location_reads_what_this_one_wrote(
        object_store: ObjectStore, object_store_at: Callable[[str], ObjectStore]) -> None:
    object_store.put_bytes("probe/doc", b"written by the first instance")
    fresh = object_store_at(object_store.location)
    assert fresh is not object_store and fresh.location == object_store.location
    assert fresh.get_bytes("probe/doc") == b"written by the first instance"
