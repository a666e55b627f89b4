"""The layered-version rules that need no Chroma: which segments a merge folds, how a version is named,
and that a version manifest's count must be the sum of its segments'."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from embedding_ingest.config import Settings
from embedding_ingest.snapshots import SegmentRef, VersionManifest
from embedding_ingest.snapshots.merge_policy import plan_merge, tier
from embedding_ingest.snapshots.segments import version_id_of


def _segment(n: int, count: int) -> SegmentRef:
    return SegmentRef(key=f"lines/snapshot/segments/{n}/", count=count, sha256=f"{n:064x}")


POLICY = {"SNAPSHOT_MERGE_FACTOR": 4, "SNAPSHOT_MERGE_FLOOR_BYTES": 100, "SNAPSHOT_MAX_SEGMENT_BYTES": 10_000,
          "SNAPSHOT_MAX_SEGMENT_RECORDS": 1_000, "SNAPSHOT_MAX_SEGMENTS": 8}


def _counts(sizes: list[int]) -> list[int]:
    """Records of segments of these sizes, ten bytes a record: the bytes bound before the records one."""
    return [size // 100 for size in sizes]


@pytest.mark.parametrize(("sizes", "merged"), [
    ([], []),
    ([50] * 3, []),  # three of tier 0: not yet F
    ([50] * 4, [0, 1, 2, 3]),
    ([6_000, 50, 60, 70, 80], [1, 2, 3, 4]),  # a full segment (>= half the maximum) is never merged again
    ([50, 60, 70, 80, 90], [0, 1, 2, 3]),  # the F smallest of the tier
    ([500, 500, 500, 500, 50, 50, 50, 50], [4, 5, 6, 7]),  # the lowest tier first
    ([4_000, 4_000, 3_000, 3_000], []),  # one tier, but together over the maximum
    ([3_000] * 9, [0, 1, 2]),  # over the soft cap: the smallest that fit in one maximum segment
    ([6_000] * 9, []),  # all full: nothing can be merged, whatever the count
    ([6_000] * 9 + [3_000, 3_000], []),  # full segments do not count against the soft cap
    ([6_000] * 3 + [3_000] * 9, [3, 4, 5]),  # nine open ones do
    ([100_000, 1_000] + [60] * 2, []),  # the bench case: a small tail stays a segment of its own
])
def test_a_merge_takes_the_smallest_f_of_the_lowest_tier_within_the_maximum(sizes, merged):
    assert plan_merge(sizes, _counts(sizes), Settings(**POLICY)) == merged


def test_an_explicit_compaction_merges_what_fits_below_f():
    settings = Settings(**POLICY)
    assert plan_merge([50, 60], [1, 1], settings) == []
    assert plan_merge([50, 60], [1, 1], settings, compact=True) == [0, 1]
    assert plan_merge([6_000, 60], [60, 1], settings, compact=True) == []  # one open segment: no merge


@pytest.mark.parametrize(("counts", "merged"), [
    ([200] * 4, [0, 1, 2, 3]),  # within both maximums
    ([300] * 4, []),  # small in bytes, but together over the records maximum
    ([500, 10, 10, 10, 10], [1, 2, 3, 4]),  # half the records maximum: full, never merged again
    ([300] * 9, [0, 1, 2]),  # over the soft cap: the smallest that fit in records too
])
def test_the_records_maximum_bounds_a_merge_as_the_bytes_one_does(counts, merged):
    sizes = [50] * len(counts)  # one tier, far below the bytes maximum
    assert plan_merge(sizes, counts, Settings(**POLICY)) == merged


def test_sizes_and_counts_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="3 sizes for 2 record counts"):
        plan_merge([50] * 3, [1, 1], Settings(**POLICY))


def test_tiers_grow_by_the_merge_factor_above_the_floor():
    settings = Settings(**POLICY)
    assert [tier(size, settings) for size in (0, 399, 400, 1_599, 1_600, 6_400)] == [0, 0, 1, 1, 2, 3]


def test_the_policy_is_read_from_the_documented_variables(monkeypatch):
    for name, value in POLICY.items():
        monkeypatch.setenv(name, str(value))
    settings = Settings()
    assert (settings.snapshot_merge_factor, settings.snapshot_merge_floor_bytes,
            settings.snapshot_max_segment_bytes, settings.snapshot_max_segment_records,
            settings.snapshot_max_segments) == (4, 100, 10_000, 1_000, 8)
    defaults = Settings.model_fields
    # a merge into the maximum segment stays within 80% of its timeout: bench/merge_size.py
    assert defaults["snapshot_max_segment_bytes"].default == 768 * 2**20
    assert defaults["snapshot_max_segment_records"].default == 500_000


def test_a_version_id_names_its_segments_in_order():
    a, b = _segment(1, 10), _segment(2, 5)
    name = version_id_of("lines", "m", 16, [a, b])
    assert name == version_id_of("lines", "m", 16, [a, b]) and len(name) == 24
    assert len({name, version_id_of("lines", "m", 16, [b, a]), version_id_of("words", "m", 16, [a, b]),
                version_id_of("lines", "other", 16, [a, b]), version_id_of("lines", "m", 16, [a])}) == 5


def test_a_version_manifest_whose_count_is_not_the_sum_of_its_segments_is_refused():
    fields = {"key": "lines/snapshot/versions/v/", "database": "lines", "dimensions": 16, "model": "m",
              "segments": [_segment(1, 10), _segment(2, 5)], "created_at": 0.0}
    assert VersionManifest(count=15, **fields).count == 15
    with pytest.raises(ValidationError, match="segments hold 15 records, the version says 16"):
        VersionManifest(count=16, **fields)
