"""Deterministic pages of records for snapshot tests (imported by unit and functional snapshot tests)."""

from __future__ import annotations

import numpy as np

from embedding_ingest.snapshots import RecordPage

DIMS = 16


def make_page(ids: list[str], dims: int = DIMS, seed: int = 0) -> RecordPage:
    rng = np.random.default_rng(seed)
    return RecordPage(ids=list(ids), embeddings=rng.standard_normal((len(ids), dims)).astype(np.float32),
                      metadatas=[{"n": i, "tag": f"t{i % 3}", "even": i % 2 == 0} for i in range(len(ids))],
                      documents=[f"text of {item_id}" for item_id in ids])


def make_pages(n: int, *, per_page: int = 100, prefix: str = "id", dims: int = DIMS,
               seed: int = 0) -> list[RecordPage]:
    ids = [f"{prefix}-{i:05d}" for i in range(n)]
    return [make_page(ids[s:s + per_page], dims, seed + s) for s in range(0, n, per_page)]
