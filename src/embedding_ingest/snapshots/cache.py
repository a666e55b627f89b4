"""Local cache of published versions (the EFS of the original system) under settings.cache_dir:
`{cache_dir}/{database}/versions/{version}/` is a complete persist directory of that version.

Versions are immutable and content-addressed, so an entry never goes stale; it appears in one
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
from embedding_ingest.stores.ports import ObjectStore
from embedding_ingest.stores.records import SnapshotVersion


def cache_enabled(settings: Settings) -> bool:
    return settings.chromadb_storage_mode in (StorageMode.EFS, StorageMode.AUTO)


def versions_dir(settings: Settings, database: str) -> Path:
    return settings.cache_dir / database / "versions"


def version_dir(settings: Settings, database: str, version: str) -> Path:
    return versions_dir(settings, database) / version


def scratch_root(settings: Settings, database: str) -> Path | None:
    """Where work dirs go: beside the cache when it is used (so finished work moves in by rename),
    else the system temp dir."""
    if not cache_enabled(settings):
        return None
    root = settings.cache_dir / database / ".work"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cached(settings: Settings, version: SnapshotVersion) -> Path | None:
    """The cached persist dir of `version`, if whole. Entries arrive by one atomic rename of a complete
    tree, so a directory without Chroma's database file was damaged afterwards: drop it and refetch."""
    path = version_dir(settings, version.database, version.version)
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


def fetch(store: ObjectStore, settings: Settings, version: SnapshotVersion) -> Path:
    """The cached directory of `version`, downloading it only if it is not cached yet."""
    hit = cached(settings, version)
    if hit is not None:
        return hit
    final = version_dir(settings, version.database, version.version)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{version.version}.fetch-"))
    try:
        materialize(store, version.key, staging / "tree")
        return _move_in(staging / "tree", final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install(settings: Settings, version: SnapshotVersion, persist_dir: Path) -> Path:
    """Move a closed, just-published persist dir into the cache (it is exactly what was archived)."""
    return _move_in(persist_dir, version_dir(settings, version.database, version.version))


def evict(settings: Settings, database: str, version: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(version_dir(settings, database, version))


def prune(settings: Settings, database: str, keep: set[str]) -> list[str]:
    """Drop cached versions not in `keep`; returns what was dropped."""
    root = versions_dir(settings, database)
    if not root.is_dir():
        return []
    dropped = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in keep:
            shutil.rmtree(entry, ignore_errors=True)
            dropped.append(entry.name)
    return dropped
