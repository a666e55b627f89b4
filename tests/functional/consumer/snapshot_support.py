"""Helpers of the open_snapshot tests: comparing answers, counting reads and open files, moving the
published version, holding a call in one thread while another acts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from embedding_ingest.consumer import search
from embedding_ingest.snapshots.chroma_hnsw import VectorIndex
from embedding_ingest.snapshots.publish import rollback

TEXTS = ["TOTAL", "CASH"]


def same(got, expected):
    assert got["ids"] == expected["ids"]
    assert got["documents"] == expected["documents"] and got["metadatas"] == expected["metadatas"]
    assert np.allclose(got["distances"], expected["distances"], atol=1e-5)


def counted(monkeypatch, owner, name):
    """Calls of `owner.name` from now on, as a list of their first argument (self for a method)."""
    calls, real = [], getattr(owner, name)

    def counting(first, *args, **kwargs):
        calls.append(first)
        return real(first, *args, **kwargs)
    monkeypatch.setattr(owner, name, counting)
    return calls


def loads_of(monkeypatch, refuse: Path | None = None, error: Exception | None = None) -> list[str]:
    """The directories whose index open_snapshot reads (or tries to) from now on, by name; reading
    `refuse`'s raises `error`."""
    loads: list[str] = []

    def make(persist_dir, *args, **kwargs):
        loads.append(Path(persist_dir).name)
        if Path(persist_dir) == refuse:
            raise error
        return VectorIndex(persist_dir, *args, **kwargs)
    monkeypatch.setattr(search, "VectorIndex", make)
    return loads


def point_at(ws, version: str) -> None:
    lease = ws.ledger.acquire_lock("lines", "test-open-snapshot", lease_seconds=120)
    try:
        rollback(ws.objects, ws.ledger, lease, database="lines", version=version)
    finally:
        ws.ledger.release_lock(lease)


def open_files(dirs) -> list[str]:
    """The files under `dirs` this process holds open (/proc/self/fd), once per descriptor."""
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:  # closed meanwhile
            continue
        held += [str(target)] if any(target.is_relative_to(directory) for directory in dirs) else []
    return sorted(held)


def left_open(dirs) -> list[str]:
    """open_files(dirs) once Chroma has let go of the closed clients' files, or after a minute: its
    client.close() ends its SQLite connections in the background (0-3 of them still open right after
    close(), none 0.2 s later, measured here)."""
    deadline = time.monotonic() + 60
    while (held := open_files(dirs)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return held


class Hold:
    """Wraps a function: once armed, its next call does its work, says so (`reached`) and waits for
    `release` before returning (a query then has started on its version and has not searched yet)."""

    def __init__(self) -> None:
        self.armed, self.reached, self.release = threading.Event(), threading.Event(), threading.Event()

    def wrap(self, real):
        def held(*args, **kwargs):
            result = real(*args, **kwargs)
            if self.armed.is_set():
                self.armed.clear()
                self.reached.set()
                assert self.release.wait(60)
            return result
        return held
