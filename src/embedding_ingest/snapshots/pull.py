"""`snapshots pull`: a published version as one stock Chroma persist directory.

The directory holds one collection named after the database (`lines`/`words`, cosine space, our
documents and metadata), so `chromadb.PersistentClient(DIR).get_collection("lines")` opens it and
`chroma run --path DIR` serves it. It is built beside DIR and renamed into place, so DIR is always
either the previous pull or the new one, never half of either. `DIR/embedding-ingest.json` records what
was pulled: pulling the same version again finds it and does nothing. Segments come from the local
segment cache (downloaded once, shared with queries and publishes)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import cache, chroma_io
from embedding_ingest.snapshots.archive import materialize
from embedding_ingest.snapshots.segments import compact, read_version
from embedding_ingest.snapshots.version_ids import resolve_version
from embedding_ingest.stores.ports import Ledger, ObjectStore
from embedding_ingest.stores.records import SnapshotVersion

MARKER = "embedding-ingest.json"


@dataclass(frozen=True)
class PullReport:
    version: SnapshotVersion
    directory: Path
    collection: str
    count: int
    segments: int  # segments folded into the directory
    reused: bool  # DIR already held this version: nothing was done


def pulled_version(directory: Path) -> dict | None:
    """What a previous pull wrote into `directory` (None if it is not a pulled snapshot)."""
    try:
        return json.loads((Path(directory) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def pull_version(store: ObjectStore, ledger: Ledger, settings: Settings, database: str, directory: Path,
                 version: str | None = None) -> PullReport:
    """Write `version` (default: the current one) of `database` as a stock Chroma directory at
    `directory`, replacing a previous pull there. Refuses (InvalidInputError) to replace anything that
    is not a previous pull. Raises what reading the version raises (ObjectNotFoundError,
    CorruptObjectError, SnapshotCountMismatchError)."""
    directory = Path(directory).absolute()
    target = resolve_version(ledger, database, version)
    previous = pulled_version(directory)
    if directory.exists() and previous is None and (not directory.is_dir() or any(directory.iterdir())):
        raise InvalidInputError(f"{directory} exists and is not a pulled snapshot; refusing to replace it")
    manifest = read_version(store, target)
    if (previous is not None and previous.get("version") == target.version
            and previous.get("database") == database and (directory / "chroma.sqlite3").is_file()):
        return PullReport(target, directory, database, target.count, len(manifest.segments), reused=True)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.pull-"))
    try:
        if cache.cache_enabled(settings):
            parts = [cache.fetch(store, settings, database, s) for s in manifest.segments]
        else:  # CHROMADB_STORAGE_MODE=s3: straight from the store
            parts = [materialize(store, s.key, staging / f"segment-{n}")
                     for n, s in enumerate(manifest.segments)]
        tree = staging / "tree"
        if len(parts) == 1:
            shutil.copytree(parts[0], tree)
        elif parts:  # one collection holding every segment: a copy of the largest, the others upserted
            compact(list(zip(parts, (s.count for s in manifest.segments), strict=True)), tree,
                    database=database, dimensions=target.dimensions)
        else:  # an empty version: an empty collection of the same profile
            with chroma_io.open_client(tree) as client:
                chroma_io.create_collection(client, database, "quality", settings)
        (tree / MARKER).write_text(json.dumps({
            "database": database, "collection": database, "version": target.version, "count": target.count,
            "model": target.model, "dimensions": target.dimensions,
            "segments": [s.sha256 for s in manifest.segments]}, indent=2) + "\n")
        _swap_in(tree, directory, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PullReport(target, directory, database, target.count, len(manifest.segments), reused=False)


def _swap_in(tree: Path, directory: Path, staging: Path) -> None:
    """Rename `tree` to `directory`; a previous pull there is renamed aside first (two renames on one
    filesystem) and removed with `staging`."""
    if directory.exists():
        os.rename(directory, staging / "previous")
    os.rename(tree, directory)
