"""Integrity of published versions: re-read every object a version is made of (its manifest, each
segment's manifest, archive and id index) and check sha256, sizes and record counts; check the local segment
cache against the same facts. Problems are collected, not raised, so one run names every bad object.
`check_version` is the raising form, used before a rollback moves the pointer."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from embedding_ingest.config import Settings
from embedding_ingest.snapshots import cache, chroma_io, id_index
from embedding_ingest.snapshots.archive import materialize, read_manifest
from embedding_ingest.snapshots.exceptions import SnapshotCountMismatchError
from embedding_ingest.snapshots.models import SegmentRef, manifest_key
from embedding_ingest.snapshots.segments import read_version
from embedding_ingest.stores.exceptions import CorruptObjectError, ObjectNotFoundError
from embedding_ingest.stores.ports import Ledger, ObjectStore
from embedding_ingest.stores.records import SnapshotVersion

__all__ = ["Problem", "VerifyReport", "check_version", "verify_database", "verify_segment"]


@dataclass(frozen=True)
class Problem:
    key: str  # the object's key in the store, or the cache entry's path
    problem: str


@dataclass
class VerifyReport:
    database: str
    versions: list[str] = field(default_factory=list)
    segments: int = 0
    records: int = 0
    problems: list[Problem] = field(default_factory=list)  # in the object store
    cache_problems: list[Problem] = field(default_factory=list)
    cache_dropped: list[str] = field(default_factory=list)  # with repair_cache

    @property
    def ok(self) -> bool:
        """No bad stored object, and no bad cache entry left in place."""
        return not self.problems and len(self.cache_dropped) == len(self.cache_problems)


def _problem_of(exc: Exception, fallback_key: str) -> Problem:
    if isinstance(exc, (CorruptObjectError, ObjectNotFoundError)):
        return Problem(exc.key, str(exc))
    return Problem(fallback_key, f"{type(exc).__name__}: {exc}")


def verify_segment(store: ObjectStore, segment: SegmentRef, scratch: Path,
                   digests: dict[str, str] | None = None) -> list[Problem]:
    """Download the segment's archive and vectors part (size and sha256 against its manifest, the
    manifest's sha256s against the version's), unpack them and count its records; with `digests`, the
    content digest of a sound segment is added under its key (to check cache entries against)."""
    key = manifest_key(segment.key)
    try:
        manifest = read_manifest(store, segment.key)
    except (CorruptObjectError, ObjectNotFoundError) as exc:
        return [_problem_of(exc, key)]
    problems = []
    if manifest.sha256 != segment.sha256:
        problems.append(Problem(key, f"names archive sha256 {manifest.sha256}, the version lists "
                                     f"{segment.sha256}"))
    named = manifest.vectors.sha256 if manifest.vectors is not None else None
    if segment.vectors_sha256 is not None and named != segment.vectors_sha256:
        problems.append(Problem(key, f"names vectors sha256 {named}, the version lists "
                                     f"{segment.vectors_sha256}"))
    if manifest.count != segment.count:
        problems.append(Problem(key, f"says {manifest.count} records, the version lists {segment.count}"))
    target = scratch / segment.segment_id
    try:
        materialize(store, segment.key, target)
        found = chroma_io.collection_info(target)
        count = dict(found).get(manifest.collection)
        if count != segment.count:
            problems.append(Problem(manifest.archive_key, f"holds {count} records in collection "
                                                          f"{manifest.collection!r}, expected "
                                                          f"{segment.count}"))
        elif digests is not None and not problems:
            digests[segment.key] = cache.content_digest(target, manifest.collection)
    except Exception as exc:  # any failure to read is a finding about this object
        problems.append(_problem_of(exc, manifest.archive_key))
    finally:
        shutil.rmtree(target, ignore_errors=True)
    try:
        id_index.check_stored(store, segment, scratch)
    except Exception as exc:  # as above, about the index object
        problems.append(_problem_of(exc, segment.ids_key or segment.key))
    return problems


def _segments_of(store: ObjectStore, versions: Iterable[SnapshotVersion], report: VerifyReport
                 ) -> dict[str, SegmentRef]:
    found: dict[str, SegmentRef] = {}
    for version in versions:
        report.versions.append(version.version)
        try:
            manifest = read_version(store, version)
        except SnapshotCountMismatchError as exc:
            report.problems.append(Problem(manifest_key(version.key), str(exc)))
            continue
        except (CorruptObjectError, ObjectNotFoundError) as exc:
            report.problems.append(_problem_of(exc, manifest_key(version.key)))
            continue
        for segment in manifest.segments:
            found.setdefault(segment.key, segment)
    return found


def verify_database(store: ObjectStore, ledger: Ledger, settings: Settings, database: str, *,
                    all_versions: bool = False, repair_cache: bool = False) -> VerifyReport:
    """Verify the current version of `database` (or every kept one) and the cache entries of their
    segments; with `repair_cache`, bad cache entries are dropped (the next read fetches them again)."""
    report = VerifyReport(database)
    current = ledger.get_published(database)
    versions = ledger.list_versions(database) if all_versions else ([current] if current else [])
    segments = _segments_of(store, versions, report)
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix=f"verify-{database}-") as tmp:
        for segment in segments.values():
            report.segments += 1
            found = verify_segment(store, segment, Path(tmp),
                                   digests if cache.cache_enabled(settings) else None)
            report.problems.extend(found)
            if not found:
                report.records += segment.count
    if cache.cache_enabled(settings):
        for segment in segments.values():
            path = cache.segment_dir(settings, database, segment)
            if not path.is_dir():
                continue
            problem = cache.entry_problem(settings, database, segment, path,
                                          expected_digest=digests.get(segment.key))
            if problem is None:
                problem = _cached_count_problem(path, database, segment)
            if problem is not None:
                report.cache_problems.append(Problem(str(path), problem))
                if repair_cache:
                    cache.evict(settings, database, segment)
                    report.cache_dropped.append(str(path))
    return report


def _cached_count_problem(path: Path, database: str, segment: SegmentRef) -> str | None:
    try:
        count = dict(chroma_io.collection_info(path)).get(database)
    except Exception as exc:  # unreadable by Chroma is the finding
        return f"Chroma cannot read it ({type(exc).__name__}: {exc})"
    return None if count == segment.count else f"holds {count} records, the segment has {segment.count}"


def check_version(store: ObjectStore, version: SnapshotVersion) -> None:
    """Raise (CorruptObjectError, ObjectNotFoundError or SnapshotCountMismatchError) unless every
    object of `version` is whole: its manifest, and each segment's manifest and archive (downloaded
    and hashed) with the expected record count."""
    manifest = read_version(store, version)
    with tempfile.TemporaryDirectory(prefix=f"check-{version.database}-") as tmp:
        for segment in manifest.segments:
            problems = verify_segment(store, segment, Path(tmp))
            if problems:
                raise CorruptObjectError(problems[0].key, "; ".join(p.problem for p in problems))


