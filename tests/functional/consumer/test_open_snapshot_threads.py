"""open_snapshot used from several threads (the console shares one Snapshot between its request
threads and refreshes it on every request): a query or get answers from the version it started on while
another thread refreshes or closes; refreshes take turns; close() sticks; loading the query model holds
up text queries alone."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from chromadb.api.models.Collection import Collection
from snapshot_support import TEXTS, Hold, counted, left_open, loads_of, open_files, point_at, same

from embedding_ingest import open_snapshot
from embedding_ingest.consumer import snapshot as snapshot_module
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import chroma_io, read_version, version_segments


class _Encoder:
    def __init__(self, real, hold: Hold):
        self.model, self.dimensions, self.encode = real.model, real.dimensions, hold.wrap(real.encode)


@pytest.mark.parametrize("meanwhile", ["refresh", "close"])
@pytest.mark.parametrize("call", ["query", "get"])
def test_a_read_answers_from_its_version_while_another_thread_refreshes_or_closes(
        layered_workspace, monkeypatch, call, meanwhile):
    """A query or get under way keeps its version open (it used to raise: the version's clients were
    closed under it); the version closes when the read ends (its files are no longer held)."""
    ws = layered_workspace
    newest, older = ws.ledger.list_versions("lines")[0], ws.ledger.list_versions("lines")[-1]
    started_on = {Path(d) for d in version_segments(ws.objects, newest, ws.settings)}
    if meanwhile == "refresh":  # the segment `older` holds too stays open with it
        started_on -= {Path(d) for d in version_segments(ws.objects, older, ws.settings)}
    hold = Hold()
    if call == "query":  # held after embedding its texts
        real_encoder_for = snapshot_module.encoder_for
        monkeypatch.setattr(snapshot_module, "encoder_for", lambda *a: _Encoder(real_encoder_for(*a), hold))
        read = lambda: snap.query(query_texts=TEXTS, n_results=7)  # noqa: E731
    else:  # held after its first segment answered
        monkeypatch.setattr(Collection, "get", hold.wrap(Collection.get))
        read = lambda: snap.get(limit=newest.count, include=["documents"])  # noqa: E731
    try:
        with open_snapshot("lines", settings=ws.settings) as snap:
            assert snap.version == newest.version
            expected = read()  # (a query: its indexes are read)
            hold.armed.set()
            with ThreadPoolExecutor(1) as pool:
                asked = pool.submit(read)
                assert hold.reached.wait(60)
                try:
                    if meanwhile == "refresh":
                        point_at(ws, older.version)
                        assert snap.refresh() is True and snap.version == older.version
                    else:
                        snap.close()
                    assert open_files(started_on)  # open while the read runs
                finally:
                    hold.release.set()
                got = asked.result(timeout=60)
            assert got["ids"] == expected["ids"] and got["documents"] == expected["documents"]
            assert left_open(started_on) == []  # closed once it ended
            if meanwhile == "refresh":
                assert snap.count() == older.count  # later reads see the version refresh moved to
                assert len(snap.query(query_texts=TEXTS, n_results=3)["ids"][0]) == 3
            else:
                with pytest.raises(InvalidInputError, match="closed"):
                    snap.query(query_texts=TEXTS)
    finally:
        point_at(ws, newest.version)


class _Announced:
    """Stands in for a lock: says a thread is about to wait for it (`waiting`), then takes it."""

    def __init__(self, lock, waiting: threading.Event) -> None:
        self._lock, self._waiting = lock, waiting

    def __enter__(self):
        self._waiting.set()
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)


def _second_refresh(snap, first: Hold, arrived: threading.Event) -> tuple[ThreadPoolExecutor, Future]:
    """With `first` (a refresh) held in read_version, start another refresh and wait until it has gone as
    far as it can: waiting for the first, inside read_version too (`arrived`), or returned."""
    snap._refresh_lock = _Announced(snap._refresh_lock, arrived)  # the only way to see a thread wait
    pool = ThreadPoolExecutor(1)
    second = pool.submit(snap.refresh)
    second.add_done_callback(lambda _: arrived.set())
    assert arrived.wait(60)
    first.release.set()
    return pool, second


def test_refreshes_at_once_open_the_new_version_once_and_read_only_its_new_segment(
        layered_workspace, monkeypatch):
    """The console refreshes its Snapshot on every request: two refreshes after a publish took turns
    neither, both opened the new version, and the second read every index again."""
    ws = layered_workspace
    newest, older = ws.ledger.list_versions("lines")[0], ws.ledger.list_versions("lines")[-1]
    kept = [s.segment_id for s in read_version(ws.objects, older).segments]
    added = [s.segment_id for s in read_version(ws.objects, newest).segments if s.segment_id not in kept]
    with open_snapshot("lines", settings=ws.settings) as snap:
        expected = snap.query(query_texts=TEXTS, n_results=7)
    point_at(ws, older.version)
    try:
        with open_snapshot("lines", settings=ws.settings) as snap:
            snap.query(query_texts=TEXTS, n_results=3)  # the kept segment's index is read
            point_at(ws, newest.version)
            loads, opened = loads_of(monkeypatch), counted(monkeypatch, chroma_io, "open_persistent")
            first, arrived, first_done = Hold(), threading.Event(), threading.Event()
            real_read = snapshot_module.read_version

            def read(*args, **kwargs):
                if first.armed.is_set():
                    return first.wrap(real_read)(*args, **kwargs)
                arrived.set()  # a second refresh loading too: it goes on once the first has swapped
                assert first_done.wait(60)
                return real_read(*args, **kwargs)
            monkeypatch.setattr(snapshot_module, "read_version", read)
            first.armed.set()
            with ThreadPoolExecutor(1) as pool:
                refreshed = pool.submit(snap.refresh)
                refreshed.add_done_callback(lambda _: first_done.set())
                assert first.reached.wait(60)
                others, second = _second_refresh(snap, first, arrived)
                results = sorted([refreshed.result(timeout=60), second.result(timeout=60)])
                others.shutdown()
            same(snap.query(query_texts=TEXTS, n_results=7), expected)
            assert results == [False, True] and snap.version == newest.version
            assert len(opened) == len(kept) + len(added)  # the new version's segments, opened once
            assert loads == added  # its new segment's index read once, the kept one's not again
    finally:
        point_at(ws, newest.version)


def test_a_refresh_that_started_before_a_publish_does_not_leave_the_snapshot_behind_it(
        layered_workspace, monkeypatch):
    """A rollback, then a publish while the refresh that saw the rollback is still opening its version:
    a refresh meanwhile used to find the Snapshot current, and the first then moved it to the old one."""
    ws = layered_workspace
    newest, older = ws.ledger.list_versions("lines")[0], ws.ledger.list_versions("lines")[-1]
    try:
        with open_snapshot("lines", settings=ws.settings) as snap:
            first, arrived = Hold(), threading.Event()
            monkeypatch.setattr(snapshot_module, "read_version", first.wrap(snapshot_module.read_version))
            point_at(ws, older.version)
            first.armed.set()
            with ThreadPoolExecutor(1) as pool:
                refreshed = pool.submit(snap.refresh)
                assert first.reached.wait(60)  # it has found `older` published, and is opening it
                point_at(ws, newest.version)
                others, second = _second_refresh(snap, first, arrived)
                results = [refreshed.result(timeout=60), second.result(timeout=60)]
                others.shutdown()
            assert snap.version == newest.version and snap.count() == newest.count
            assert results == [True, True]
    finally:
        point_at(ws, newest.version)


@pytest.mark.parametrize("when", ["after", "during"])
def test_a_closed_snapshot_stays_closed_when_refreshed_after_or_during_close(layered_workspace, monkeypatch,
                                                                            when):
    """Console.close() closes its Snapshots while request threads may be refreshing them: the version a
    refresh opened was swapped in after close() and owned by nobody (its segments' files stayed open)."""
    ws = layered_workspace
    newest, older = ws.ledger.list_versions("lines")[0], ws.ledger.list_versions("lines")[-1]
    dirs = [Path(d) for v in (newest, older) for d in version_segments(ws.objects, v, ws.settings)]
    hold = Hold()
    monkeypatch.setattr(snapshot_module, "read_version", hold.wrap(snapshot_module.read_version))
    try:
        snap = open_snapshot("lines", settings=ws.settings)
        assert open_files(dirs)
        point_at(ws, older.version)
        if when == "after":
            snap.close()
            with pytest.raises(InvalidInputError, match="snapshot 'lines' is closed"):
                snap.refresh()
        else:
            hold.armed.set()
            with ThreadPoolExecutor(1) as pool:
                refreshed = pool.submit(snap.refresh)
                assert hold.reached.wait(60)  # it is opening `older`
                snap.close()
                hold.release.set()
                with pytest.raises(InvalidInputError, match="snapshot 'lines' is closed"):
                    refreshed.result(timeout=60)
        assert repr(snap) == "Snapshot('lines', closed)"
        with pytest.raises(InvalidInputError, match="closed"):
            snap.query(query_texts=TEXTS)
        assert left_open(dirs) == []
    finally:
        point_at(ws, newest.version)


def test_gets_and_embedding_queries_do_not_wait_for_another_threads_model_to_load(layered_workspace,
                                                                                   monkeypatch):
    """A text query's first call builds the snapshot's encoder (MiniLM: an ONNX session, seconds); it
    used to hold the lock every get and query takes, so they all waited for it."""
    ws = layered_workspace
    loading, loaded = threading.Event(), threading.Event()
    real_encoder_for = snapshot_module.encoder_for

    def slow_encoder_for(*args):
        loading.set()
        assert loaded.wait(60)
        return real_encoder_for(*args)
    monkeypatch.setattr(snapshot_module, "encoder_for", slow_encoder_for)
    with open_snapshot("lines", settings=ws.settings) as snap, ThreadPoolExecutor(2) as pool:
        texts = pool.submit(snap.query, query_texts=TEXTS, n_results=3)
        assert loading.wait(60)
        others = pool.submit(lambda: (len(snap.get(limit=3, include=[])["ids"]), snap.count(),
                                      len(snap.query(query_embeddings=np.ones(snap.dimensions),
                                                     n_results=1)["ids"][0])))
        try:
            assert others.result(timeout=60) == (3, snap.info.count, 1)  # while the model still loads
        finally:
            loaded.set()
        assert len(texts.result(timeout=60)["ids"][0]) == 3
