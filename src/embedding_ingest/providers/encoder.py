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
_ROWS_PER_CHUNK = 1024


@lru_cache(maxsize=1 << 18)
def _gram_hash(gram: str) -> int:
    """A stable 64-bit hash (Python's own hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "little")


@lru_cache(maxsize=1 << 16)
def _text_hashes(text: str, min_n: int, max_n: int) -> np.ndarray:
    """The hashes of a text's grams; receipts repeat texts ("TOTAL", "TAX") so this is cached too."""
    grams = _grams(text, min_n, max_n)
    hashes = np.fromiter((_gram_hash(gram) for gram in grams), dtype=np.uint64, count=len(grams))
    hashes.flags.writeable = False  # shared by every caller through the cache
    return hashes


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
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), _ROWS_PER_CHUNK):  # bounds the float64 scratch matrix
            out[start : start + _ROWS_PER_CHUNK] = self._encode_chunk(texts[start : start + _ROWS_PER_CHUNK])
        return out

    def _encode_chunk(self, texts: Sequence[str]) -> np.ndarray:
        per_text = [_text_hashes(text, self.min_n, self.max_n) for text in texts]
        counts = np.fromiter((len(hashes) for hashes in per_text), dtype=np.int64, count=len(per_text))
        hashes = np.concatenate(per_text)
        rows = np.repeat(np.arange(len(per_text), dtype=np.int64), counts)
        cells = rows * self.dimensions + (hashes % np.uint64(self.dimensions)).astype(np.int64)
        signs = np.where(hashes & _SIGN_BIT, -1.0, 1.0)
        vectors = np.bincount(cells, weights=signs, minlength=len(per_text) * self.dimensions)
        vectors = vectors.reshape(len(per_text), self.dimensions)
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
        # A text whose grams cancel out exactly would have norm 0; give it a fixed unit vector instead.
        zero = norms == 0
        vectors[zero, 0], norms[zero] = 1.0, 1.0
        return vectors / norms[:, None]

    def encode_one(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()
