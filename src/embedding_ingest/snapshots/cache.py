"""Local cache of published segments (the EFS of the original system) under settings.cache_dir:
`{cache_dir}/{database}/segments/{segment_id}/` is a complete persist directory of that segment.

Segments are immutable and content-addressed, and versions share them, so an entry never goes stale
and a new version never downloads the segments it shares with an older one. An entry appears in one
atomic rename after it was fully unpacked (or built), so a present entry is a complete one."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from embedding_ingest.config import Settings, StorageMode
from embedding_ingest.snapshots.archive import materialize
from embedding_ingest.snapshots.models import SegmentRef
from embedding_ingest.stores.ports import ObjectStore

_LEGACY_VERSIONS = "versions"  # whole-version entries of the layout before segments


def cache_enabled(settings: Settings) -> bool:
    return settings.chromadb_storage_mode in (StorageMode.EFS, StorageMode.AUTO)


def segments_dir(settings: Settings, database: str) -> Path:
    return settings.cache_dir / database / "segments"


def segment_dir(settings: Settings, database: str, segment: SegmentRef) -> Path:
    return segments_dir(settings, database) / segment.segment_id


def scratch_root(settings: Settings, database: str) -> Path | None:
    """Where work dirs go: beside the cache when it is used (so finished work moves in by rename),
    else the system temp dir."""
    if not cache_enabled(settings):
        return None
    root = settings.cache_dir / database / ".work"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cached(settings: Settings, database: str, segment: SegmentRef) -> Path | None:
    """The cached persist dir of `segment`, if whole. Entries arrive by one atomic rename of a complete
    tree, so a directory without Chroma's database file was damaged afterwards: drop it and refetch."""
    path = segment_dir(settings, database, segment)
    if not path.is_dir():
        return None
    if not (path / "chroma.sqlite3").is_file():
        shutil.rmtree(path, ignore_errors=True)
        return None
    return path


def _move_in(source: Path, final: Path) -> Path:
    """Rename `source` to `final` unless another process got there first (then theirs is kept)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, final)
    except OSError as exc:
        if exc.errno == errno.EXDEV:  # scratch on another filesystem: copy, then rename the copy
            staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.copy-"))
            shutil.copytree(source, staging, dirs_exist_ok=True)
            return _move_in(staging, final)
        if not final.is_dir():
            raise
        shutil.rmtree(source, ignore_errors=True)
    return final


def fetch(store: ObjectStore, settings: Settings, database: str, segment: SegmentRef) -> Path:
    """The cached directory of `segment`, downloading it only if it is not cached yet."""
    hit = cached(settings, database, segment)
    if hit is not None:
        return hit
    final = segment_dir(settings, database, segment)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{segment.segment_id}.fetch-"))
    try:
        materialize(store, segment.key, staging / "tree")
        return _move_in(staging / "tree", final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install(settings: Settings, database: str, segment: SegmentRef, persist_dir: Path) -> Path:
    """Move a closed, just-published persist dir into the cache (it is exactly what was archived)."""
    return _move_in(persist_dir, segment_dir(settings, database, segment))


def evict(settings: Settings, database: str, segment: SegmentRef) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(segment_dir(settings, database, segment))


def prune(settings: Settings, database: str, keep: set[str]) -> list[str]:
    """Drop cached segments whose id is not in `keep` (and any whole-version entry of the layout before
    segments); returns the segment ids dropped."""
    shutil.rmtree(settings.cache_dir / database / _LEGACY_VERSIONS, ignore_errors=True)
    root = segments_dir(settings, database)
    if not root.is_dir():
        return []
    dropped = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in keep:
            shutil.rmtree(entry, ignore_errors=True)
            dropped.append(entry.name)
    return dropped
