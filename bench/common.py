"""Shared pieces of the benchmarks: the real test workspace, synthetic records, timing, machine facts."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
# The benchmarks drive the very workspace the end-to-end tests use (tests/support/pipeline.py).
for extra in (REPO_ROOT / "tests" / "support", REPO_ROOT / "src"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from pipeline import make_workspace, receipts_file  # noqa: E402

from embedding_ingest.snapshots import RecordPage  # noqa: E402

__all__ = ["Figure", "machine", "make_workspace", "random_pages", "rate", "receipts_file", "stopwatch"]


@dataclass
class Figure:
    """One row of the table: a measured value, optionally against a side-by-side baseline."""

    name: str
    value: float
    unit: str
    target: float | None = None  # the value must stay at or below it
    baseline: float | None = None
    detail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def missed_by(self) -> float | None:
        """How far over the target, as a fraction of the target (None when met or no target)."""
        if self.target is None or self.value <= self.target:
            return None
        return self.value / self.target - 1.0


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as elapsed:` then `elapsed[0]` holds the wall seconds."""
    box = [0.0]
    started = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - started


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    return {"cores": os.cpu_count() or 1, "cpu_model": cpu_model(), "python": platform.python_version(),
            "platform": platform.platform()}


def random_pages(count: int, dimensions: int, *, prefix: str, page_size: int = 1000,
                 seed: int = 7) -> Iterator[RecordPage]:
    """`count` unit vectors with ids `{prefix}-{i}`, a short document and scalar metadata, in pages."""
    rng = np.random.default_rng(seed)
    for start in range(0, count, page_size):
        stop = min(count, start + page_size)
        vectors = rng.standard_normal((stop - start, dimensions), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"{prefix}-{i:07d}" for i in range(start, stop)]
        yield RecordPage(ids=ids, embeddings=vectors, documents=[f"text of {i}" for i in ids],
                         metadatas=[{"receipt": i // 40, "line": i % 40} for i in range(start, stop)])


def rate(items: int, seconds: float) -> float:
    return items / seconds if seconds > 0 else float("inf")
