"""The one resolver of version ids people type (snapshots/version_ids.py): a whole id or a unique prefix
of at least 8 characters; an ambiguous prefix is one line naming the candidates."""

from __future__ import annotations

import pytest

from embedding_ingest.snapshots.exceptions import VersionNotFoundError
from embedding_ingest.snapshots.version_ids import AmbiguousVersionError, match_version, short_version
from embedding_ingest.stores.records import SnapshotVersion

IDS = ["88e3e006317a0305aada998b", "88e3e006a1b2c3d4e5f60718", "74a95b01fe94340bbfb2ac1e"]


def _kept(*ids: str) -> list[SnapshotVersion]:
    return [SnapshotVersion(database="lines", version=v, key=f"lines/versions/{v}", count=1, dimensions=8,
                            model="m", published_at=0.0, fencing_token=1) for v in ids]


def test_a_unique_prefix_names_its_version_and_an_ambiguous_one_lists_the_candidates():
    kept = _kept(*IDS)
    assert match_version(kept, "lines", "74a95b01").version == IDS[2]
    assert match_version(kept, "lines", "88e3e0063").version == IDS[0]
    assert match_version(kept, "lines", IDS[1]).version == IDS[1]
    with pytest.raises(AmbiguousVersionError) as ambiguous:
        match_version(kept, "lines", "88e3e006")
    assert str(ambiguous.value) == ("version '88e3e006' of 'lines' is ambiguous (2 kept versions start "
                                    "with it: 88e3e0063, 88e3e006a)")
    with pytest.raises(VersionNotFoundError, match="too short"):
        match_version(kept, "lines", "74a95b")
    with pytest.raises(VersionNotFoundError, match="not among the kept versions"):
        match_version(kept, "lines", "74a95b02")


def test_short_version_is_the_shortest_prefix_unique_among_the_kept_of_at_least_8():
    # One length for every version of the database (as `snapshots list` shows them), git style.
    assert short_version(IDS[2], IDS) == "74a95b01f"
    assert short_version(IDS[2], [IDS[0], IDS[2]]) == "74a95b01"
    assert short_version(IDS[0], IDS) == "88e3e0063"
    assert short_version(IDS[0], IDS[:1]) == "88e3e006"
