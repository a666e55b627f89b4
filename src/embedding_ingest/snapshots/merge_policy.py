"""Which segments one merge folds together: bounded segments, tiered merging (issue 21).

Before, a publish folded *every* segment into one when there were too many or the small ones held
more than a share of the largest, so one step's local disk and time grew with the whole collection (a
10 GB /tmp ceiling near 700,000 x 1536-d). Now, as Lucene's TieredMergePolicy and LanceDB's
compaction do:

- a segment's tier is how many times SNAPSHOT_MERGE_FACTOR (F) its archive bytes are above
  SNAPSHOT_MERGE_FLOOR_BYTES (everything below the floor is tier 0);
- a segment of at least half SNAPSHOT_MAX_SEGMENT_BYTES or half SNAPSHOT_MAX_SEGMENT_RECORDS is full
  and never merged again;
- one merge takes the F smallest segments of the lowest tier that has F of them, if together they fit
  both maximums; else, when the version has more than SNAPSHOT_MAX_SEGMENTS segments that are not
  full (a soft cap: every query searches every segment), the smallest ones (at most F) that fit.
  Full segments do not count against the cap, as Lucene's TieredMergePolicy leaves its "too large"
  segments out of its segment budget: a collection of N bytes needs at least N / maximum segments
  whatever is merged, and counting them made every publish past the cap rewrite the largest segment
  that was still open (1,000,000 x 384-d in publishes of 100,000: publishes 9 and 10 both merged);
- a publish does at most one merge, so its work is bounded by the maximum segment size, whatever the
  collection's size (the maximums are measured: config.py, bench/merge_size.py); each record is
  rewritten about log_F(max / floor) times over its life.

Sizes are stored bytes (SegmentRef/manifest `archive_bytes` plus the vectors part's, or the bytes of a
directory just built); counts are records.
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


class _Segments:
    """Sizes (stored bytes) and record counts of a version's segments, with the two maximums."""

    def __init__(self, sizes: Sequence[int], counts: Sequence[int], settings: Settings) -> None:
        if len(sizes) != len(counts):
            raise ValueError(f"{len(sizes)} sizes for {len(counts)} record counts")
        self.sizes, self.counts, self.settings = sizes, counts, settings

    def full(self, index: int) -> bool:
        """At least half the maximum in bytes or in records: never merged again."""
        return (2 * self.sizes[index] >= self.settings.snapshot_max_segment_bytes
                or 2 * self.counts[index] >= self.settings.snapshot_max_segment_records)

    def fit(self, chosen: Sequence[int]) -> bool:
        """Whether merged together they stay within both maximums."""
        return (sum(self.sizes[i] for i in chosen) <= self.settings.snapshot_max_segment_bytes
                and sum(self.counts[i] for i in chosen) <= self.settings.snapshot_max_segment_records)

    def open(self) -> list[int]:
        """Indices of the segments that may still be merged (not full), smallest first."""
        return sorted((i for i in range(len(self.sizes)) if not self.full(i)),
                      key=lambda i: (self.sizes[i], i))


def _smallest_that_fit(candidates: Sequence[int], segments: _Segments) -> list[int]:
    chosen: list[int] = []
    for index in candidates[:segments.settings.snapshot_merge_factor]:
        if not segments.fit([*chosen, index]):
            break
        chosen.append(index)
    return sorted(chosen) if len(chosen) >= 2 else []


def plan_merge(sizes: Sequence[int], counts: Sequence[int], settings: Settings, *,
               compact: bool = False) -> list[int]:
    """Indices (ascending) of the segments of sizes `sizes` (archive bytes) and `counts` (records) that
    one merge should fold into one, or [] for no merge. `compact` (an explicit compaction): merge the
    smallest segments that fit even below F of a tier and below the soft cap. Raises ValueError when
    the two lists differ in length."""
    segments = _Segments(sizes, counts, settings)
    candidates = segments.open()
    factor = settings.snapshot_merge_factor
    tiers: dict[int, list[int]] = {}
    for index in candidates:
        tiers.setdefault(tier(sizes[index], settings), []).append(index)
    for level in sorted(tiers):
        members = tiers[level][:factor]
        if len(members) == factor and segments.fit(members):
            return sorted(members)
    if compact or len(candidates) > settings.snapshot_max_segments:
        return _smallest_that_fit(candidates, segments)
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
