"""Which segments one merge folds together: bounded segments, tiered merging (issue 21).

Before, a publish folded *every* segment into one when there were too many or the small ones held
more than a share of the largest, so one step's local disk and time grew with the whole collection (a
10 GB /tmp ceiling near 700,000 x 1536-d). Now, as Lucene's TieredMergePolicy and LanceDB's
compaction do:

- a segment's tier is how many times SNAPSHOT_MERGE_FACTOR (F) its archive bytes are above
  SNAPSHOT_MERGE_FLOOR_BYTES (everything below the floor is tier 0);
- a segment of at least half SNAPSHOT_MAX_SEGMENT_BYTES is full and never merged again;
- one merge takes the F smallest segments of the lowest tier that has F of them, if together they fit
  SNAPSHOT_MAX_SEGMENT_BYTES; else, when the version has more than SNAPSHOT_MAX_SEGMENTS segments (a
  soft cap: every query searches every segment), the smallest ones (at most F) that fit;
- a publish does at most one merge, so its work is bounded by the maximum segment size, whatever the
  collection's size; each record is rewritten about log_F(max / floor) times over its life.

Sizes are archive bytes (SegmentRef/manifest `archive_bytes`, or the bytes of a directory just built).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from embedding_ingest.config import Settings


def tier(size: int, settings: Settings) -> int:
    """0 below F x floor bytes, 1 below F^2 x floor, ..."""
    level, bound = 0, settings.snapshot_merge_floor_bytes * settings.snapshot_merge_factor
    while size >= bound:
        level += 1
        bound *= settings.snapshot_merge_factor
    return level


def _open(sizes: Sequence[int], settings: Settings) -> list[int]:
    """Indices of the segments that may still be merged (not full), smallest first."""
    return sorted((i for i, size in enumerate(sizes) if 2 * size < settings.snapshot_max_segment_bytes),
                  key=lambda i: (sizes[i], i))


def _smallest_that_fit(candidates: Sequence[int], sizes: Sequence[int], settings: Settings) -> list[int]:
    chosen: list[int] = []
    total = 0
    for index in candidates[:settings.snapshot_merge_factor]:
        if total + sizes[index] > settings.snapshot_max_segment_bytes:
            break
        chosen.append(index)
        total += sizes[index]
    return sorted(chosen) if len(chosen) >= 2 else []


def plan_merge(sizes: Sequence[int], settings: Settings, *, compact: bool = False) -> list[int]:
    """Indices (ascending) of the segments of sizes `sizes` (bytes) that one merge should fold into
    one, or [] for no merge. `compact` (an explicit compaction): merge the smallest segments that fit
    even below F of a tier and below the soft cap."""
    candidates = _open(sizes, settings)
    factor = settings.snapshot_merge_factor
    tiers: dict[int, list[int]] = {}
    for index in candidates:
        tiers.setdefault(tier(sizes[index], settings), []).append(index)
    for level in sorted(tiers):
        members = tiers[level][:factor]
        if len(members) == factor and sum(sizes[i] for i in members) <= settings.snapshot_max_segment_bytes:
            return sorted(members)
    if compact or len(sizes) > settings.snapshot_max_segments:
        return _smallest_that_fit(candidates, sizes, settings)
    return []


def dir_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (about its archive's size: tar adds ~1 KB per file)."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                total += os.path.getsize(full)
    return total
