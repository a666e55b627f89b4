"""`open_snapshot` follows new versions, can bypass the local cache, and embeds query texts with an
OpenAI snapshot's own model through the synchronous embeddings endpoint (real SDK, fake server)."""

from __future__ import annotations

import shutil

import numpy as np
from fake_openai import API_KEY, running_fake_openai
from pipeline import make_workspace

from embedding_ingest import open_snapshot
from embedding_ingest.config import StorageMode


def test_refresh_moves_to_the_newly_published_version(tmp_path, ingest_lines):
    ws = make_workspace(tmp_path, dimensions=32)
    ingest_lines(ws, tmp_path, 2, 0)
    with open_snapshot("lines", settings=ws.settings) as snap:
        first, count = snap.version, snap.count()
        ingest_lines(ws, tmp_path, 1, 2)
        assert snap.version == first and snap.count() == count  # still reading what it opened
        assert snap.refresh() is True
        assert snap.version != first and snap.count() > count
        assert snap.version == ws.ledger.get_published("lines").version


def test_storage_mode_s3_reads_the_object_store_not_the_cache(layered_workspace):
    ws = layered_workspace
    with open_snapshot("lines", settings=ws.settings) as snap:
        expected = snap.query(query_texts=["TOTAL"], n_results=5)
    shutil.rmtree(ws.settings.cache_dir)
    s3 = ws.settings.model_copy(update={"chromadb_storage_mode": StorageMode.S3})
    with open_snapshot("lines", settings=s3) as snap:
        assert snap.query(query_texts=["TOTAL"], n_results=5)["ids"] == expected["ids"]
    assert not ws.settings.cache_dir.exists()


def test_openai_snapshot_embeds_query_texts_with_its_model_and_dimensions(tmp_path, ingest_lines):
    with running_fake_openai(tmp_path / "fake", dimensions=48) as fake:
        ws = make_workspace(tmp_path, dimensions=48, EMBEDDING_PROVIDER="openai", OPENAI_API_KEY=API_KEY,
                            OPENAI_BASE_URL=fake.base_url)
        ingest_lines(ws, tmp_path, 2, 0)
        with open_snapshot("lines", settings=ws.settings) as snap:
            assert (snap.model, snap.dimensions) == ("text-embedding-3-small", 48)
            before = len(fake.calls_to("POST", "/v1/embeddings"))
            got = snap.query(query_texts=["TOTAL RM"], n_results=3, include=["embeddings", "distances"])
            assert len(fake.calls_to("POST", "/v1/embeddings")) == before + 1
            query = fake.engine.embed(["TOTAL RM"], 48)[0]
            direct = snap.query(query_embeddings=np.asarray(query), n_results=3)
        assert got["ids"] == direct["ids"]
        nearest = got["embeddings"][0][0]
        cosine = 1 - nearest @ query / (np.linalg.norm(nearest) * np.linalg.norm(query))
        assert abs(cosine - got["distances"][0][0]) < 1e-4
