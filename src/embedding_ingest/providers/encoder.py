"""A deterministic text encoder that needs no model download: signed hashing of character n-grams.

Texts sharing many character n-grams (typos, the same words in another order) land close together;
unrelated texts are near-orthogonal. That is enough for the local provider, for tests that query
snapshots, and as the bench's source of realistic 1536-d vectors. The model name versions the algorithm:
change anything here that alters vectors and the name must change too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

LOCAL_MODEL_NAME = "local-hash-ngram-v1"
DEFAULT_DIMENSIONS = 384
_BOUNDARY = "\x02"  # marks word starts/ends so "cat" in "cat food" differs from "cat" in "concat"
_SIGN_BIT = np.uint64(1 << 63)


@lru_cache(maxsize=1 << 18)
def _gram_hash(gram: str) -> int:
    """A stable 64-bit hash (Python's own hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "little")


def _grams(text: str, min_n: int, max_n: int) -> list[str]:
    words = text.lower().split()
    if not words:
        return [f"{_BOUNDARY}empty{_BOUNDARY}"]  # every text, even "", gets a non-zero vector
    padded = _BOUNDARY + f"{_BOUNDARY} {_BOUNDARY}".join(words) + _BOUNDARY
    grams = [padded[i : i + n] for n in range(min_n, max_n + 1) for i in range(len(padded) - n + 1)]
    grams.extend(f"w:{word}" for word in words)  # whole words weigh a little more than their pieces
    return grams or [padded]


class HashedNgramEncoder:
    """Maps texts to L2-normalised float32 vectors of `dimensions` (signed feature hashing)."""

    def __init__(self, dimensions: int = DEFAULT_DIMENSIONS, *, min_n: int = 3, max_n: int = 5) -> None:
        if dimensions <= 0:
            raise ValueError(f"dimensions must be positive, got {dimensions}")
        if not 1 <= min_n <= max_n:
            raise ValueError(f"need 1 <= min_n <= max_n, got {min_n}..{max_n}")
        self.dimensions = dimensions
        self.min_n = min_n
        self.max_n = max_n

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, shape (len(texts), dimensions), dtype float32, each row of norm 1."""
        gram_lists = [_grams(text, self.min_n, self.max_n) for text in texts]
        counts = np.fromiter((len(grams) for grams in gram_lists), dtype=np.int64, count=len(gram_lists))
        hashes = np.fromiter(
            (_gram_hash(gram) for grams in gram_lists for gram in grams),
            dtype=np.uint64,
            count=int(counts.sum()),
        )
        rows = np.repeat(np.arange(len(gram_lists)), counts)
        buckets = (hashes % np.uint64(self.dimensions)).astype(np.int64)
        signs = np.where(hashes & _SIGN_BIT, -1.0, 1.0)
        vectors = np.zeros((len(gram_lists), self.dimensions), dtype=np.float64)
        np.add.at(vectors, (rows, buckets), signs)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # A text whose grams cancel out exactly would have norm 0; give it a fixed unit vector instead.
        vectors[norms[:, 0] == 0, 0] = 1.0
        norms[norms == 0] = 1.0
        return (vectors / norms).astype(np.float32)

    def encode_one(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()
