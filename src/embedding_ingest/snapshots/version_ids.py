"""Snapshot version ids as people see and type them.

A version id is 24 hex characters; people are shown it cut at the shortest length at which every kept
version of its database is unique, at least MIN_VERSION_PREFIX characters (`short_version`, git
style), and every place that takes a version (query/pull/serve --version, snapshots rollback,
open_snapshot) accepts that prefix, or any longer one (`resolve_version`, the one resolver)."""

from __future__ import annotations

from collections.abc import Sequence

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots.exceptions import NothingPublishedError, VersionNotFoundError
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import SnapshotVersion

MIN_VERSION_PREFIX = 8  # as batch ids and `git log --oneline`


class AmbiguousVersionError(InvalidInputError):
    """A version prefix that more than one kept version starts with (the message lists them)."""

    def __init__(self, database: str, given: str, candidates: Sequence[str]) -> None:
        length = unique_prefix_length(candidates)
        shown = ", ".join(c[:length] for c in candidates)
        super().__init__(f"version {given!r} of {database!r} is ambiguous ({len(candidates)} kept "
                         f"versions start with it: {shown})")
        self.database, self.given, self.candidates = database, given, list(candidates)


class VersionPrefixTooShortError(VersionNotFoundError):
    """A version given by fewer than MIN_VERSION_PREFIX characters that is no whole version."""

    def __init__(self, database: str, version: str) -> None:
        super().__init__(database, version)
        self.args = (f"version {version!r} of {database!r} is too short (give at least "
                     f"{MIN_VERSION_PREFIX} characters of a kept version)",)


def unique_prefix_length(ids: Sequence[str], minimum: int = MIN_VERSION_PREFIX) -> int:
    """The shortest prefix length (>= minimum) at which every id in `ids` is unique."""
    ordered = sorted(set(ids))
    longest = 0
    for before, after in zip(ordered, ordered[1:], strict=False):
        common = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
                      min(len(before), len(after)))
        longest = max(longest, common)
    return max(minimum, longest + 1)


def short_version(version: str, kept: Sequence[str]) -> str:
    """`version` as people are shown it: cut at the shortest length (at least MIN_VERSION_PREFIX) at
    which every id of `kept` (the version ids of its database) is unique, the length `snapshots list`
    shows them at."""
    return version[:unique_prefix_length([*kept, version])]


def short_version_of(ledger: Ledger, database: str, version: str | None) -> str:
    """`short_version` against the ledger's kept versions of `database` ("" for None)."""
    if not version:
        return ""
    return short_version(version, [v.version for v in ledger.list_versions(database)])


def match_version(kept: Sequence[SnapshotVersion], database: str, given: str) -> SnapshotVersion:
    """The kept version `given` names: whole, or a unique prefix of at least MIN_VERSION_PREFIX
    characters. Raises VersionNotFoundError (no kept version starts with it, or it is too short) or
    AmbiguousVersionError."""
    given = given.strip()
    exact = next((v for v in kept if v.version == given), None)
    if exact is not None:
        return exact
    if len(given) < MIN_VERSION_PREFIX:
        raise VersionPrefixTooShortError(database, given)
    matches = [v for v in kept if v.version.startswith(given.lower())]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise AmbiguousVersionError(database, given, [v.version for v in matches])
    raise VersionNotFoundError(database, given)


def resolve_version(ledger: Ledger, database: str, given: str | None, *,
                    pointer: str | None = None) -> SnapshotVersion:
    """The current version of `database` (`given` None), or the kept version `given` names (see
    match_version). Raises NothingPublishedError, VersionNotFoundError, AmbiguousVersionError."""
    if given is None:
        current = ledger.get_published(database)
        if current is None:
            raise NothingPublishedError(database)
        return current
    return match_version(ledger.list_versions(database, pointer=pointer), database, given)


__all__ = ["MIN_VERSION_PREFIX", "AmbiguousVersionError", "VersionPrefixTooShortError", "match_version",
           "resolve_version", "short_version", "short_version_of", "unique_prefix_length"]
