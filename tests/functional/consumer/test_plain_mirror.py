"""SNAPSHOT_PUBLISH_PLAIN=true: every publish leaves {database}/snapshot/latest/ as a plain Chroma
directory in the object store, which a consumer downloads as a prefix and opens with stock Chroma."""

from __future__ import annotations

from pathlib import Path

import chromadb
from chromadb.config import Settings as ChromaSettings
from pipeline import make_workspace

from embedding_ingest.snapshots.mirror import PLAIN_MANIFEST, plain_prefix


def _download_prefix(store, prefix: str, dest: Path) -> dict:
    """What a consumer of the reference layout does: copy every object under the prefix."""
    for info in store.list(prefix):
        target = dest / info.key[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        store.download_file(info.key, target)
    return store.get_json(prefix + PLAIN_MANIFEST)


def _count(directory: Path) -> int:
    client = chromadb.PersistentClient(str(directory), settings=ChromaSettings(anonymized_telemetry=False))
    try:
        return client.get_collection("lines").count()
    finally:
        client.close()


def test_each_publish_refreshes_the_plain_mirror(tmp_path, ingest_lines):
    ws = make_workspace(tmp_path, dimensions=32, SNAPSHOT_PUBLISH_PLAIN="true")
    ingest_lines(ws, tmp_path, 2, 0)
    first = ws.ledger.get_published("lines")
    manifest = _download_prefix(ws.objects, plain_prefix("lines"), tmp_path / "v1")
    assert (manifest["version"], manifest["count"]) == (first.version, first.count)
    assert _count(tmp_path / "v1") == first.count
    assert all((tmp_path / "v1" / name).stat().st_size == size for name, size in manifest["files"].items())

    ingest_lines(ws, tmp_path, 1, 2)
    second = ws.ledger.get_published("lines")
    manifest = _download_prefix(ws.objects, plain_prefix("lines"), tmp_path / "v2")
    assert manifest["version"] == second.version != first.version
    assert _count(tmp_path / "v2") == second.count > first.count
    stored = {info.key[len(plain_prefix("lines")):] for info in ws.objects.list(plain_prefix("lines"))}
    assert stored == set(manifest["files"]) | {PLAIN_MANIFEST, "pointer.json"}  # nothing stale left


def test_no_mirror_unless_asked(tmp_path, ingest_lines):
    ws = make_workspace(tmp_path, dimensions=32)
    ingest_lines(ws, tmp_path, 1, 0)
    assert [i.key.rsplit("/", 1)[-1] for i in ws.objects.list(plain_prefix("lines"))] == ["pointer.json"]
