"""The published snapshot in stock Chroma: `snapshots pull` writes a directory that
chromadb.PersistentClient opens, `snapshots serve` serves it with Chroma's own server, and both answer
exactly as open_snapshot does (same vectors, same where filter)."""

from __future__ import annotations

import json
import socket

import chromadb
import pytest
from chroma_server import run_readme_serve_example, served
from chromadb.config import Settings as ChromaSettings
from cli_runner import Cli

from embedding_ingest import open_snapshot
from embedding_ingest.snapshots.chroma_io import open_client
from embedding_ingest.snapshots.pull import pull_version


def _run(ws, *args, code=0):
    done = Cli(home=ws.settings.home, settings={}).run(*args, code=code)
    return done.stdout, done.stderr


def _ranked(result) -> list[list[tuple[float, str]]]:
    """Per query, (distance to 4 places, id) nearest first: equal distances may come in any order."""
    return [sorted((round(d, 4), i) for i, d in zip(ids, distances, strict=True))
            for ids, distances in zip(result["ids"], result["distances"], strict=True)]


@pytest.fixture(scope="module")
def probe(layered_workspace):
    """Two stored vectors as queries, and a filter that leaves out the first one's receipt."""
    with open_snapshot("lines", settings=layered_workspace.settings) as snap:
        rows = snap.get(limit=2, offset=snap.count() - 30, include=["embeddings", "metadatas"])
        queries = rows["embeddings"]
        where = {"receipt_id": {"$ne": rows["metadatas"][0]["receipt_id"]}}  # not the query's own receipt
        expected = snap.query(query_embeddings=queries, n_results=6, where=where)
        unfiltered = snap.query(query_embeddings=queries, n_results=6)
    own = where["receipt_id"]["$ne"]
    assert all(m["receipt_id"] != own for row in expected["metadatas"] for m in row)
    assert expected["ids"] != unfiltered["ids"]  # the filter matters for these queries
    return queries, where, expected, unfiltered


def test_pull_writes_a_stock_chroma_directory_that_answers_like_open_snapshot(layered_workspace, probe,
                                                                             tmp_path):
    ws = layered_workspace
    queries, where, expected, unfiltered = probe
    target = tmp_path / "pulled"
    first = json.loads(_run(ws, "snapshots", "pull", "line", str(target), "--output", "json")[0])
    assert (first["collection"], first["segments"], first["reused"]) == ("lines", 2, False)

    client = chromadb.PersistentClient(str(target), settings=ChromaSettings(anonymized_telemetry=False))
    try:
        collection = client.get_collection("lines")
        assert collection.count() == first["count"] == ws.ledger.get_published("lines").count
        assert collection.configuration_json["hnsw"]["space"] == "cosine"
        got = collection.query(query_embeddings=queries, n_results=6, where=where)
        assert _ranked(got) == _ranked(expected)
        assert _ranked(collection.query(query_embeddings=queries, n_results=6)) == _ranked(unfiltered)
        contains = collection.get(where_document={"$contains": "TOTAL"})
        assert contains["ids"] and all("TOTAL" in d for d in contains["documents"])
    finally:
        client.close()

    inode = (target / "chroma.sqlite3").stat().st_ino
    again = json.loads(_run(ws, "snapshots", "pull", "line", str(target), "--output", "json")[0])
    assert again["reused"] is True and again["version"] == first["version"]
    assert (target / "chroma.sqlite3").stat().st_ino == inode  # not rewritten


def test_a_failed_pull_leaves_the_previous_pull_whole(layered_workspace, tmp_path):
    ws = layered_workspace
    target = tmp_path / "pulled"
    older = ws.ledger.list_versions("lines")[-1]
    pull_version(ws.objects, ws.ledger, ws.settings, "lines", target, older.version)
    marker = (target / "embedding-ingest.json").read_text()

    def broken(*_args, **_kwargs):
        raise OSError("disk full")

    with pytest.MonkeyPatch.context() as patch:  # the copy of a segment fails halfway through
        patch.setattr("embedding_ingest.snapshots.pull.compact", broken)
        with pytest.raises(OSError, match="disk full"):
            pull_version(ws.objects, ws.ledger, ws.settings, "lines", target)
    assert (target / "embedding-ingest.json").read_text() == marker
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pulled"]  # no half-written staging left
    with open_client(target) as client:
        assert client.get_collection("lines").count() == older.count

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    out, err = _run(ws, "snapshots", "pull", "line", str(tmp_path / "mine"), code=2)  # bad input
    assert "not a pulled snapshot" in err and (tmp_path / "mine" / "notes.txt").exists()


def test_serve_answers_chroma_http_clients_like_open_snapshot(layered_workspace, probe, tmp_path):
    queries, where, expected, _ = probe
    ended: dict = {}
    with served(layered_workspace.settings.home, "line", tmp_path / "served", ended) as client:
        collection = client.get_collection("lines")
        got = collection.query(query_embeddings=queries, n_results=6, where=where)
        assert _ranked(got) == _ranked(expected)
        # The README's example of querying the served collection with vectors from open_snapshot.
        readme = run_readme_serve_example(layered_workspace.settings.home, ended["port"])
        assert readme.returncode == 0, readme.stderr[-2000:]
        assert "TOTAL" in readme.stdout and readme.stdout.split()[-1].startswith("sroie-")
    assert ended["returncode"] == 130
    said = [line for line in ended["stderr"].splitlines() if line.strip()]
    assert said[0].startswith("serving lines version ") and f"at http://127.0.0.1:{ended['port']} " in said[0]
    assert said[-1].startswith("stopped by SIGTERM: snapshots serve line (nothing is lost: the server "
                               "stopped")
    assert "Chroma Cloud" not in ended["stderr"] and "Traceback" not in ended["stderr"]
    with socket.socket() as probe:  # Chroma's server went with it: nothing listens (TIME_WAIT may linger)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", ended["port"]))
