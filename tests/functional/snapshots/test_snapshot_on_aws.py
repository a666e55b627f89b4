"""The same lifecycle on S3 + DynamoDB (moto's real-HTTP server): the snapshot code only speaks the
ports, so what differs is the adapters' conditional writes, streaming and deletes."""

from __future__ import annotations

import pytest
from snapshot_pages import DIMS, make_pages

from embedding_ingest.config import StorageMode
from embedding_ingest.consumer import Snapshot
from embedding_ingest.snapshots import (
    ids_present,
    materialize,
    publish_next_version,
    read_manifest,
    rollback,
    versions_prefix,
    write_snapshot,
)
from embedding_ingest.stores.exceptions import CorruptObjectError, StaleFencingTokenError
from embedding_ingest.stores.records import ItemKind

DB = "lines"
MODEL = "test-model-16"


def _delta(store, name, n, start):
    prefix = f"{DB}/delta/{DB}/receipt_lines/{name}/"
    pages = make_pages(n, prefix=f"{name}", seed=start)
    write_snapshot(store, prefix, pages, collection=DB, dimensions=DIMS, model=MODEL)
    return prefix


def test_publish_rollback_and_prune_on_s3_and_dynamodb(s3_object_store, dynamo_ledger, settings):
    store, ledger = s3_object_store, dynamo_ledger
    settings = settings.model_copy(update={"chromadb_storage_mode": StorageMode.S3,
                                           "snapshot_versions_kept": 2})
    lease = ledger.acquire_lock(DB, "writer-1", lease_seconds=3600)
    versions = []
    for i in range(3):
        outcome = publish_next_version(store, ledger, lease, database=DB, settings=settings,
                                       sources=[_delta(store, f"d{i}", 30, i)])
        versions.append(outcome.version)
    assert outcome.total_embeddings == 90
    assert [v.version for v in ledger.list_versions(DB)] == [versions[2].version, versions[1].version]
    stored = {info.key.split("/")[3] for info in store.list(versions_prefix(DB))}
    assert stored == {versions[2].version, versions[1].version}

    rollback(store, ledger, lease, database=DB, version=versions[1].version)
    current = ledger.get_published(DB)
    assert ids_present(store, current, ["d0-00000", "d2-00000"], settings) == {"d0-00000"}
    with Snapshot(ItemKind.LINE, store=store, ledger=ledger, settings=settings) as snapshot:
        assert len(snapshot.query(query_embeddings=[1.0] * DIMS, n_results=3)["ids"][0]) == 3

    assert ledger.release_lock(lease)
    assert ledger.acquire_lock(DB, "writer-2", lease_seconds=3600) is not None
    with pytest.raises(StaleFencingTokenError):
        publish_next_version(store, ledger, lease, database=DB, settings=settings,
                             sources=[_delta(store, "d9", 5, 9)])
    assert ledger.get_published(DB) == current


def test_corrupt_archive_on_s3_is_detected(s3_object_store, tmp_path):
    prefix = _delta(s3_object_store, "dc", 40, 0)
    manifest = read_manifest(s3_object_store, prefix)
    data = bytearray(s3_object_store.get_bytes(manifest.archive_key))
    data[100] ^= 0x01
    s3_object_store.put_bytes(manifest.archive_key, bytes(data))
    with pytest.raises(CorruptObjectError) as info:
        materialize(s3_object_store, prefix, tmp_path / "out")
    assert info.value.key == manifest.archive_key
