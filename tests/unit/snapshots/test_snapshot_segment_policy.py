"""The layered-version rules that need no Chroma: when segments are folded, how a version is named,
and that a version manifest's count must be the sum of its segments'."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from embedding_ingest.config import Settings
from embedding_ingest.snapshots import SegmentRef, VersionManifest
from embedding_ingest.snapshots.segments import needs_compaction, version_id_of


def _segment(n: int, count: int) -> SegmentRef:
    return SegmentRef(key=f"lines/snapshot/segments/{n}/", count=count, sha256=f"{n:064x}")


@pytest.mark.parametrize(("counts", "folded"), [
    ([], False),
    ([100_000], False),
    ([100_000, 1_000], False),  # the bench case: a small tail stays a segment of its own
    ([100_000] + [1_000] * 7, False),  # 8 segments, tail 7% of the base
    ([100_000] + [1_000] * 8, True),  # a 9th segment
    ([100, 100], True),  # tail as big as the base
    ([1_000, 250], False),  # exactly the ratio
    ([1_000, 251], True),
    ([10, 5_000], False),  # the largest is the base, wherever it is
])
def test_segments_are_folded_past_the_count_or_the_tail_ratio(counts, folded):
    settings = Settings(SNAPSHOT_MAX_SEGMENTS=8, SNAPSHOT_COMPACT_RATIO=0.25)
    assert needs_compaction(counts, settings) is folded


def test_the_policy_is_read_from_the_documented_variables(monkeypatch):
    monkeypatch.setenv("SNAPSHOT_MAX_SEGMENTS", "2")
    monkeypatch.setenv("SNAPSHOT_COMPACT_RATIO", "1.5")
    settings = Settings()
    assert (settings.snapshot_max_segments, settings.snapshot_compact_ratio) == (2, 1.5)
    assert needs_compaction([100, 100], settings) is False
    assert needs_compaction([100, 100, 1], settings) is True


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
