"""The small segments of a version (the tails a few publishes leave beside the base) held in memory
for exact search. Each segment searched through Chroma costs a fixed ~1.4 ms per query whatever its
size (measured with chromadb 1.5.9: the Rust call, not Python), so with three tails a query cost more
than twice the base's own search; one matrix product over a few thousand unit vectors costs a
fraction of that. Used for unfiltered queries only: `where`/`where_document` keep Chroma's own
filter semantics by asking every segment."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedding_ingest.snapshots.flat import iter_pages

MAX_TAIL_RECORDS = 50_000  # beyond this a segment stays in Chroma (memory: ~6 KB per 1536-d record)


class TailRecords:
    """Records of the small segments: ids, unit vectors (float32), documents, metadata."""

    def __init__(self, segment_dirs: Sequence[Path], collection: str) -> None:
        ids: list[str] = []
        vectors: list[np.ndarray] = []
        self.documents: list[str] = []
        self.metadatas: list[dict[str, Any]] = []
        for path in segment_dirs:
            for page in iter_pages(path, collection, 2000):
                ids.extend(page.ids)
                vectors.append(page.embeddings)
                self.documents.extend(page.documents)
                self.metadatas.extend(page.metadatas)
        self.ids = ids
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
        self.unit = _unit(matrix) if len(ids) else matrix

    def __len__(self) -> int:
        return len(self.ids)

    def query(self, vectors: np.ndarray, n_results: int, include: Sequence[str]) -> dict[str, Any]:
        """Chroma's query result shape for the `n_results` nearest by cosine distance (1 - cos)."""
        # einsum without optimize stays off BLAS: a multithreaded BLAS spinning up its threads for one
        # small product cost several ms on a busy 2-core machine (bench/query.py), more than the product.
        distances = 1.0 - np.einsum("qd,rd->qr", _unit(vectors), self.unit, optimize=False)
        n = min(n_results, len(self.ids))
        result: dict[str, Any] = {"ids": [], "distances": [], "documents": [], "metadatas": []}
        for row in distances:
            nearest = np.argpartition(row, n - 1)[:n] if n < len(row) else np.arange(len(row))
            nearest = nearest[np.argsort(row[nearest], kind="stable")]
            result["ids"].append([self.ids[i] for i in nearest])
            result["distances"].append([float(row[i]) for i in nearest])
            if "documents" in include:
                result["documents"].append([self.documents[i] for i in nearest])
            if "metadatas" in include:
                result["metadatas"].append([self.metadatas[i] or None for i in nearest])
        return result


def _unit(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to norm 1 (a zero row stays zero), float32: cosine as Chroma's "cosine" space."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)
