"""Chroma persist directories: open, write in bounded batches, read back in pages, and prove closed.

Rules kept here once:
- one PersistentClient per directory, telemetry off, always closed before the directory is packed or
  copied (lesson 6), and a directory is never packed while this process still holds a file in it;
- every collection has embedding_function=None, so Chroma can never embed text with a model other
  than the one that made our vectors (lesson 13);
- HNSW profiles: "cheap" for deltas and intermediates (never queried, only read back by id/page),
  "quality" for published snapshots (cosine, parameters from Settings).

Measured on this machine: 5k x 1536-d, cheap ~3.9k upserts/s vs ~1.0k/s for quality (and for
Chroma's default); 5k-20k x 384-d, cheap ~4.2-4.8k/s vs ~2.7-3.8k/s.
Chroma 1.5.9 ignores `batch_size` (it is not even kept in the stored configuration) and a large
`sync_threshold` only defers writing the index: it is still built in memory at upsert time, and an
unsynced index must be rebuilt when the directory is next opened, so neither lets us skip the build.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from embedding_ingest.config import Settings
from embedding_ingest.snapshots.exceptions import SnapshotBusyError
from embedding_ingest.snapshots.models import Profile, RecordPage

CHEAP_HNSW: dict[str, Any] = {"ef_construction": 8, "max_neighbors": 4}
_DEFAULTS = Settings.model_fields


def hnsw_configuration(profile: Profile, settings: Settings | None = None) -> dict[str, Any]:
    if profile == "cheap":
        return dict(CHEAP_HNSW)
    if profile == "quality":
        ef = settings.hnsw_ef_construction if settings else _DEFAULTS["hnsw_ef_construction"].default
        neighbors = settings.hnsw_max_neighbors if settings else _DEFAULTS["hnsw_max_neighbors"].default
        return {"space": "cosine", "ef_construction": ef, "max_neighbors": neighbors}
    raise ValueError(f"unknown snapshot profile {profile!r}")


# Chroma shares one System per persist directory between all clients of a process, and a client's
# close() stops that System under every other client of the directory. Two threads reading one cached
# segment (two executions, or a consumer Snapshot beside a step) would break each other, so clients
# are shared per (process, directory) and the directory's System is stopped by its last user only.
_clients_guard = threading.Lock()
_clients: dict[tuple[int, str], list[Any]] = {}  # (pid, resolved dir) -> [client, users]


@functools.cache
def _chroma_settings() -> ChromaSettings:
    """Chroma's settings for our clients, made once per process (Chroma's Settings reads variables named
    after its fields and a .env file; making one costs ~6 ms, more than some whole segment reads).
    PersistentClient sets the path on the copy it is given."""
    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def open_persistent(persist_dir: Path) -> chromadb.ClientAPI:
    """A client of a persist directory, shared with this process's other users of the directory; the
    caller releases it with `close_client(client)` (never `client.close()`, which would stop the
    directory under the other users)."""
    key = (os.getpid(), str(Path(persist_dir).resolve()))
    with _clients_guard:
        entry = _clients.get(key)
        if entry is None:
            client = chromadb.PersistentClient(path=key[1], settings=_chroma_settings().model_copy())
            entry = _clients[key] = [client, 0]
        entry[1] += 1
        return entry[0]


def close_client(client: chromadb.ClientAPI) -> None:
    """Release a client from `open_persistent`; the last release of its directory closes it."""
    with _clients_guard:
        for key, entry in list(_clients.items()):
            if entry[0] is client and key[0] == os.getpid():
                entry[1] -= 1
                if entry[1] > 0:
                    return
                del _clients[key]
                break
        client.close()


@contextlib.contextmanager
def open_client(persist_dir: Path) -> Iterator[chromadb.ClientAPI]:
    """A client that is released on exit, whatever happens inside."""
    client = open_persistent(persist_dir)
    try:
        yield client
    finally:
        close_client(client)


def create_collection(client: chromadb.ClientAPI, name: str, profile: Profile,
                      settings: Settings | None = None) -> Any:
    return client.create_collection(name, embedding_function=None,
                                    configuration={"hnsw": hnsw_configuration(profile, settings)})


def get_collection(client: chromadb.ClientAPI, name: str) -> Any:
    return client.get_collection(name, embedding_function=None)


def upsert_pages(client: chromadb.ClientAPI, collection: Any, pages: Iterable[RecordPage], *,
                 dimensions: int, where: str, checked: bool = False) -> set[str]:
    """Upsert every page in batches Chroma accepts; returns the unique ids written. `checked`: the
    caller has already run RecordPage.validate on each page (it costs a pass over every metadata)."""
    max_batch = client.get_max_batch_size()
    written: set[str] = set()
    for page_no, page in enumerate(pages):
        if not checked:
            page.validate(dimensions, f"{where} page {page_no}")
        for start in range(0, len(page), max_batch):
            stop = start + max_batch
            collection.upsert(ids=page.ids[start:stop],
                              embeddings=page.embeddings[start:stop],
                              metadatas=[m or None for m in page.metadatas[start:stop]],
                              documents=page.documents[start:stop])
        written.update(page.ids)
    return written


def iter_pages(persist_dir: Path, collection: str, page_size: int = 1000) -> Iterator[RecordPage]:
    """Every record of `collection`, at most `page_size` at a time (bounded memory, lesson 12)."""
    if page_size <= 0:
        raise ValueError(f"page_size must be positive, got {page_size}")
    with open_client(persist_dir) as client:
        col = get_collection(client, collection)
        offset = 0
        while True:
            got = col.get(limit=page_size, offset=offset,
                          include=["embeddings", "metadatas", "documents"])
            ids = list(got["ids"])
            if not ids:
                break
            embeddings = np.asarray(got["embeddings"], dtype=np.float32)
            yield RecordPage(ids=ids, embeddings=embeddings.reshape(len(ids), -1),
                             metadatas=[dict(m) if m else {} for m in got["metadatas"]],
                             documents=[d if d is not None else "" for d in got["documents"]])
            offset += len(ids)
            if len(ids) < page_size:
                break
        del col


def iter_ids(client: chromadb.ClientAPI, collection: Any, page_size: int = 5000) -> Iterator[str]:
    offset = 0
    page_size = min(page_size, client.get_max_batch_size())
    while True:
        ids = collection.get(limit=page_size, offset=offset, include=[])["ids"]
        yield from ids
        offset += len(ids)
        if len(ids) < page_size:
            return


def ids_in(client: chromadb.ClientAPI, collection: Any, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    step = client.get_max_batch_size()
    for start in range(0, len(ids), step):
        found.update(collection.get(ids=list(ids[start:start + step]), include=[])["ids"])
    return found


def collection_info(persist_dir: Path) -> list[tuple[str, int]]:
    """(name, count) of every collection in a directory."""
    with open_client(persist_dir) as client:
        return [(col.name, col.count()) for col in client.list_collections()]


def _open_paths_under(root: Path) -> list[str]:
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():  # not Linux: nothing to check with
        return []
    prefix = str(root.resolve()) + os.sep
    held = []
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            target = os.readlink(fd_dir / fd)
            if target.startswith(prefix):
                held.append(target)
    return held


def _registered_under(root: Path) -> bool:
    """Whether this process's registry still lists an open client of `root` (or of a directory
    inside it): then the directory is really in use and no wait would release it."""
    resolved = str(root.resolve())
    pid = os.getpid()
    with _clients_guard:
        return any(key_pid == pid and (path == resolved or path.startswith(resolved + os.sep))
                   for key_pid, path in _clients)


RELEASE_TIMEOUT_SECONDS = 10.0


def ensure_released(persist_dir: Path, timeout: float = RELEASE_TIMEOUT_SECONDS) -> None:
    """Raise SnapshotBusyError unless no file under `persist_dir` is open in this process.

    A client this process still has open (our registry lists it) is refused at once. Otherwise any
    handle left is a closed client's: chromadb 1.5.9's close() drops its Rust bindings, whose sqlx
    SQLite pool closes each connection on its own worker thread (`sqlx-sqlite-worker-N`) when that
    thread next runs, measured 0-190 ms after close() returned on a busy 2-core machine (issue 21).
    So poll /proc/self/fd with a bounded backoff (1 ms doubling to 50 ms, up to `timeout` seconds),
    collect garbage once as a last resort, and only then refuse."""
    if not _open_paths_under(persist_dir):
        return
    if _registered_under(persist_dir):
        held = _open_paths_under(persist_dir)
        raise SnapshotBusyError(f"{persist_dir} still has {len(held)} open file handle(s) "
                                f"(e.g. {held[0] if held else persist_dir}); refusing to pack an open "
                                "Chroma directory")
    deadline = time.monotonic() + timeout
    delay = 0.001
    while time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        if not _open_paths_under(persist_dir):
            return
        delay = min(delay * 2, 0.05)
    gc.collect()
    held = _open_paths_under(persist_dir)
    if held:
        raise SnapshotBusyError(f"{persist_dir} still has {len(held)} open file handle(s) "
                                f"(e.g. {held[0]}) {timeout:g} s after its last client closed; "
                                "refusing to pack an open Chroma directory")

