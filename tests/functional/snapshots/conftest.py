"""Fixtures for the publish lifecycle: real LocalObjectStore (counting what is downloaded), real
SqliteLedger, Settings pointing every path into the test's tmp dir."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "snapshots"))  # snapshot_pages

from snapshot_pages import DIMS, make_pages  # noqa: E402

from embedding_ingest.config import Settings, StorageMode  # noqa: E402
from embedding_ingest.snapshots import write_snapshot  # noqa: E402
from embedding_ingest.stores.local_objects import LocalObjectStore  # noqa: E402
from embedding_ingest.stores.records import Lease  # noqa: E402
from embedding_ingest.stores.sqlite_ledger import SqliteLedger  # noqa: E402

MODEL = "test-model-16"
DB = "lines"


class CountingObjectStore(LocalObjectStore):
    """The real local store, recording which keys were downloaded and running an optional hook
    just before a key under a given prefix is uploaded (to interleave a competing writer)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.downloads: Counter[str] = Counter()
        self.before_upload: dict[str, object] = {}

    def download_file(self, key: str, path: Path) -> None:
        self.downloads[key] += 1
        super().download_file(key, path)

    def upload_file(self, key: str, path: Path, *, if_none_match: bool = False, move: bool = False,
                    sha256: str | None = None) -> str:
        for prefix, hook in list(self.before_upload.items()):
            if key.startswith(prefix):
                del self.before_upload[prefix]
                hook()
        return super().upload_file(key, path, if_none_match=if_none_match, move=move, sha256=sha256)


@pytest.fixture
def store(tmp_path: Path) -> CountingObjectStore:
    return CountingObjectStore(tmp_path / "objects")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    yield ledger
    ledger.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", chroma_root=tmp_path / "cache",
                    chromadb_storage_mode=StorageMode.AUTO, embedding_model=MODEL,
                    embedding_dimensions=DIMS, snapshot_versions_kept=3,
                    hnsw_ef_construction=32, hnsw_max_neighbors=8, chromadb_bucket=None,
                    dynamodb_table_name=None)


@pytest.fixture
def lease(ledger: SqliteLedger) -> Lease:
    held = ledger.acquire_lock(DB, "writer-1", lease_seconds=3600)
    assert held is not None
    return held


@pytest.fixture
def make_delta(store: CountingObjectStore):
    def make(name: str, n: int, *, start: int = 0, seed: int = 0, model: str = MODEL) -> str:
        return delta(store, name, n, start=start, seed=seed, model=model)
    return make


def delta(store: LocalObjectStore, name: str, n: int, *, start: int = 0, seed: int = 0,
          model: str = MODEL) -> str:
    """A committed cheap delta snapshot of ids line-{start}..line-{start+n-1}."""
    prefix = f"{DB}/delta/{DB}/receipt_lines/{name}/"
    pages = make_pages(start + n, prefix="line", seed=seed)
    ids_wanted = {f"line-{i:05d}" for i in range(start, start + n)}
    trimmed = []
    for page in pages:
        keep = [i for i, item_id in enumerate(page.ids) if item_id in ids_wanted]
        if keep:
            trimmed.append(type(page)(ids=[page.ids[i] for i in keep], embeddings=page.embeddings[keep],
                                      metadatas=[page.metadatas[i] for i in keep],
                                      documents=[page.documents[i] for i in keep]))
    write_snapshot(store, prefix, trimmed, collection=DB, dimensions=DIMS, model=model)
    return prefix
