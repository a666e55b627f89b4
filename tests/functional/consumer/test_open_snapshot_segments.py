"""open_snapshot's in-process search, per segment (review of issue 21's query path): a segment the index
reader refuses or cannot load is asked through Chroma alone, said once at WARNING, while the other
segments stay in this process; a query answers from the version it started on while another thread
refreshes or closes the Snapshot; a refresh does not read again the indexes of the segments it keeps."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from chromadb.api.models.Collection import Collection

from embedding_ingest import open_snapshot
from embedding_ingest.consumer import search
from embedding_ingest.consumer import snapshot as snapshot_module
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import chroma_io, read_version, version_segments
from embedding_ingest.snapshots.chroma_hnsw import VectorIndex
from embedding_ingest.snapshots.exceptions import ChromaFormatError
from embedding_ingest.snapshots.publish import rollback

TEXTS = ["TOTAL", "CASH"]


def _same(got, expected):
    assert got["ids"] == expected["ids"]
    assert got["documents"] == expected["documents"] and got["metadatas"] == expected["metadatas"]
    assert np.allclose(got["distances"], expected["distances"], atol=1e-5)


def _counted(monkeypatch, owner, name):
    """Calls of `owner.name` from now on, as a list of their first argument (self for a method)."""
    calls, real = [], getattr(owner, name)

    def counting(first, *args, **kwargs):
        calls.append(first)
        return real(first, *args, **kwargs)
    monkeypatch.setattr(owner, name, counting)
    return calls


def _loads(monkeypatch, refuse: Path | None = None, error: Exception | None = None) -> list[str]:
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


@pytest.mark.parametrize("error", [ChromaFormatError("refused by this test"),
                                   TypeError("load_index() got an unexpected keyword argument")])
def test_a_segment_the_reader_refuses_or_cannot_load_alone_is_asked_through_chroma(
        layered_workspace, monkeypatch, caplog, error):
    ws = layered_workspace
    dirs = version_segments(ws.objects, ws.ledger.get_published("lines"), ws.settings)
    assert len(dirs) == 2
    with open_snapshot("lines", settings=ws.settings) as snap:
        expected = snap.query(query_texts=TEXTS, n_results=7)
    _loads(monkeypatch, refuse=Path(dirs[1]), error=error)
    searched = _counted(monkeypatch, VectorIndex, "search")
    asked = _counted(monkeypatch, Collection, "query")
    with caplog.at_level(logging.INFO, logger=search.__name__), \
            open_snapshot("lines", settings=ws.settings) as snap:
        first = snap.query(query_texts=TEXTS, n_results=7)
        second = snap.query(query_texts=TEXTS, n_results=7)
    _same(first, expected)
    _same(second, expected)
    # the other segment stays in this process: Chroma is asked once per query, not once per segment
    assert (len(searched), len(asked)) == (2, 2)
    [said] = caplog.records  # once, not per query
    assert said.levelno == logging.WARNING
    assert str(dirs[1]) in said.getMessage() and f"{type(error).__name__}: {error}" in said.getMessage()


def test_a_search_the_index_cannot_answer_asks_chroma_for_that_segment_and_query(
        layered_workspace, monkeypatch):
    """hnswlib cannot always return n neighbours (VectorIndex.search then raises ChromaFormatError):
    Chroma answers for that segment, that query; the next query is searched in this process again."""
    ws = layered_workspace
    with open_snapshot("lines", settings=ws.settings) as snap:
        expected = snap.query(query_texts=TEXTS, n_results=7)
        real, failed = VectorIndex.search, []

        def once(index, vectors, n):
            if not failed:
                failed.append(index)
                raise ChromaFormatError("the index of 1 records could not return 7 neighbours")
            return real(index, vectors, n)
        monkeypatch.setattr(VectorIndex, "search", once)
        asked = _counted(monkeypatch, Collection, "query")
        _same(snap.query(query_texts=TEXTS, n_results=7), expected)
        assert len(asked) == 1  # that segment alone
        _same(snap.query(query_texts=TEXTS, n_results=7), expected)
        assert len(asked) == 1


def _point_at(ws, version: str) -> None:
    lease = ws.ledger.acquire_lock("lines", "test-open-snapshot", lease_seconds=120)
    try:
        rollback(ws.objects, ws.ledger, lease, database="lines", version=version)
    finally:
        ws.ledger.release_lock(lease)


class _Hold:
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


class _Encoder:
    def __init__(self, real, hold: _Hold):
        self.model, self.dimensions, self.encode = real.model, real.dimensions, hold.wrap(real.encode)


@pytest.mark.parametrize("meanwhile", ["refresh", "close"])
@pytest.mark.parametrize("call", ["query", "get"])
def test_a_read_answers_from_its_version_while_another_thread_refreshes_or_closes(
        layered_workspace, monkeypatch, call, meanwhile):
    """A query or get under way keeps its version open (it used to raise: the version's clients were
    closed under it); the version closes when the read ends."""
    ws = layered_workspace
    newest, older = ws.ledger.list_versions("lines")[0], ws.ledger.list_versions("lines")[-1]
    hold = _Hold()
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
            started_on = snap._open
            hold.armed.set()
            with ThreadPoolExecutor(1) as pool:
                asked = pool.submit(read)
                assert hold.reached.wait(60)
                try:
                    if meanwhile == "refresh":
                        _point_at(ws, older.version)
                        assert snap.refresh() is True and snap.version == older.version
                    else:
                        snap.close()
                finally:
                    hold.release.set()
                got = asked.result(timeout=60)
            assert got["ids"] == expected["ids"] and got["documents"] == expected["documents"]
            assert started_on.clients == [] and started_on.collections == []  # closed once it ended
            if meanwhile == "refresh":
                assert snap.count() == older.count  # later reads see the version refresh moved to
                assert len(snap.query(query_texts=TEXTS, n_results=3)["ids"][0]) == 3
            else:
                with pytest.raises(InvalidInputError, match="closed"):
                    snap.query(query_texts=TEXTS)
    finally:
        _point_at(ws, newest.version)


def test_refresh_reads_only_the_indexes_of_segments_it_had_not_read(layered_workspace, monkeypatch):
    ws = layered_workspace
    newest, older = ws.ledger.list_versions("lines")[0], ws.ledger.list_versions("lines")[-1]
    kept = [s.segment_id for s in read_version(ws.objects, older).segments]
    added = [s.segment_id for s in read_version(ws.objects, newest).segments if s.segment_id not in kept]
    assert kept and added and set(kept) < {s.segment_id for s in read_version(ws.objects, newest).segments}
    with open_snapshot("lines", settings=ws.settings) as snap:
        expected = snap.query(query_texts=TEXTS, n_results=7)
    loads = _loads(monkeypatch)
    _point_at(ws, older.version)
    try:
        with open_snapshot("lines", settings=ws.settings) as snap:
            snap.query(query_texts=TEXTS, n_results=3)
            assert sorted(loads) == sorted(kept)
            _point_at(ws, newest.version)
            assert snap.refresh() is True
            _same(snap.query(query_texts=TEXTS, n_results=7), expected)
            assert sorted(loads) == sorted([*kept, *added])  # the new segment alone was read
            _point_at(ws, older.version)
            assert snap.refresh() is True
            snap.query(query_texts=TEXTS, n_results=3)
            assert sorted(loads) == sorted([*kept, *added])  # nothing read again
    finally:
        _point_at(ws, newest.version)


class _Announced:
    """Stands in for a lock: says a thread is about to wait for it (`waiting`), then takes it."""

    def __init__(self, lock, waiting: threading.Event) -> None:
        self._lock, self._waiting = lock, waiting

    def __enter__(self):
        self._waiting.set()
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)


def _second_refresh(snap, first: _Hold, arrived: threading.Event) -> tuple[ThreadPoolExecutor, Future]:
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
    _point_at(ws, older.version)
    try:
        with open_snapshot("lines", settings=ws.settings) as snap:
            snap.query(query_texts=TEXTS, n_results=3)  # the kept segment's index is read
            _point_at(ws, newest.version)
            loads, opened = _loads(monkeypatch), _counted(monkeypatch, chroma_io, "open_persistent")
            first, arrived, first_done = _Hold(), threading.Event(), threading.Event()
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
            _same(snap.query(query_texts=TEXTS, n_results=7), expected)
            assert results == [False, True] and snap.version == newest.version
            assert len(opened) == len(kept) + len(added)  # the new version's segments, opened once
            assert loads == added  # its new segment's index read once, the kept one's not again
    finally:
        _point_at(ws, newest.version)


def test_a_refresh_that_started_before_a_publish_does_not_leave_the_snapshot_behind_it(
        layered_workspace, monkeypatch):
    """A rollback, then a publish while the refresh that saw the rollback is still opening its version:
    a refresh meanwhile used to find the Snapshot current, and the first then moved it to the old one."""
    ws = layered_workspace
    newest, older = ws.ledger.list_versions("lines")[0], ws.ledger.list_versions("lines")[-1]
    try:
        with open_snapshot("lines", settings=ws.settings) as snap:
            first, arrived = _Hold(), threading.Event()
            monkeypatch.setattr(snapshot_module, "read_version", first.wrap(snapshot_module.read_version))
            _point_at(ws, older.version)
            first.armed.set()
            with ThreadPoolExecutor(1) as pool:
                refreshed = pool.submit(snap.refresh)
                assert first.reached.wait(60)  # it has found `older` published, and is opening it
                _point_at(ws, newest.version)
                others, second = _second_refresh(snap, first, arrived)
                results = [refreshed.result(timeout=60), second.result(timeout=60)]
                others.shutdown()
            assert snap.version == newest.version and snap.count() == newest.count
            assert results == [True, True]
    finally:
        _point_at(ws, newest.version)


def _open_files(dirs) -> int:
    """Files under `dirs` this process holds open (/proc/self/fd)."""
    held = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:  # closed meanwhile
            continue
        held += any(target.is_relative_to(directory) for directory in dirs)
    return held


@pytest.mark.parametrize("when", ["after", "during"])
def test_a_closed_snapshot_stays_closed_when_refreshed_after_or_during_close(layered_workspace, monkeypatch,
                                                                            when):
    """Console.close() closes its Snapshots while request threads may be refreshing them: the version a
    refresh opened was swapped in after close() and owned by nobody (its segments' files stayed open)."""
    ws = layered_workspace
    newest, older = ws.ledger.list_versions("lines")[0], ws.ledger.list_versions("lines")[-1]
    dirs = [Path(d) for v in (newest, older) for d in version_segments(ws.objects, v, ws.settings)]
    hold = _Hold()
    monkeypatch.setattr(snapshot_module, "read_version", hold.wrap(snapshot_module.read_version))
    try:
        snap = open_snapshot("lines", settings=ws.settings)
        assert _open_files(dirs) > 0
        _point_at(ws, older.version)
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
        assert _open_files(dirs) == 0
    finally:
        _point_at(ws, newest.version)


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


def test_a_segment_refused_once_is_not_read_again_nor_warned_about_again_after_a_refresh(
        layered_workspace, monkeypatch, caplog):
    """The refusal is handed over with the indexes: a refused segment used to be read again (a refusal
    can come after hnswlib has loaded the whole index) and warned about again on every version."""
    ws = layered_workspace
    newest, older = ws.ledger.list_versions("lines")[0], ws.ledger.list_versions("lines")[-1]
    [refused] = version_segments(ws.objects, older, ws.settings)  # the segment both versions hold
    expected = {}
    for version in (older, newest):
        with open_snapshot("lines", settings=ws.settings, version=version.version) as snap:
            expected[version.version] = snap.query(query_texts=TEXTS, n_results=7)
    loads = _loads(monkeypatch, refuse=Path(refused), error=ChromaFormatError("refused by this test"))
    _point_at(ws, older.version)
    try:
        with caplog.at_level(logging.WARNING, logger=search.__name__), \
                open_snapshot("lines", settings=ws.settings) as snap:
            for version in (older, newest, older):
                _point_at(ws, version.version)
                snap.refresh()
                _same(snap.query(query_texts=TEXTS, n_results=7), expected[version.version])
    finally:
        _point_at(ws, newest.version)
    assert loads.count(Path(refused).name) == 1
    [said] = caplog.records
    assert str(refused) in said.getMessage() and "refused by this test" in said.getMessage()
