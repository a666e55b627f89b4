"""Local cache of published segments (the EFS of the original system) under settings.cache_dir:
`{cache_dir}/{database}/segments/{segment_id}/` is a complete persist directory of that segment.

Segments are immutable and content-addressed, and versions share them, so an entry never goes stale
and a new version never downloads the segments it shares with an older one. An entry appears in one
atomic rename after it was fully unpacked (or built), so a present entry is a complete one.

The cache must not hide corruption from a writer: `{database}/records/{segment_id}.json` holds the
sha256 of each entry's archive (checked against the manifest when the entry was made, as was the
vectors part of a segment stored in two parts, issue 21); an entry
without it, or of another sha256, is fetched again. A writer (publish, rollback) calls
`fetch(..., verify=True)`, which also checks that the store still holds the segment's manifest with
that sha256 and an archive of its size whose etag is one recorded for bytes checked against that
sha256 (else the entry is fetched again, which checks them). `snapshots verify` downloads the archive and
compares the entry's records (ids, vectors, documents, metadata) with it (content_digest). Files are
not compared as bytes: Chroma rewrites chroma.sqlite3 whenever a client opens a directory, and the
HNSW files too for a collection below its sync_threshold (measured with chromadb 1.5.9), so only
the records are stable."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from embedding_ingest.config import Settings, StorageMode
from embedding_ingest.snapshots.archive import materialize, read_manifest
from embedding_ingest.snapshots.chroma_io import iter_pages
from embedding_ingest.snapshots.chroma_sqlite import DB_FILE, integrity_problem
from embedding_ingest.snapshots.models import ArchivePart, SegmentRef, SnapshotManifest, manifest_key
from embedding_ingest.stores.exceptions import CorruptObjectError, ObjectNotFoundError
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


def record_path(settings: Settings, database: str, segment_id: str) -> Path:
    return settings.cache_dir / database / "records" / f"{segment_id}.json"


_DIGEST_PAGE = 2000


def content_digest(tree: Path, collection: str) -> str:
    """sha256 over every record's id, vector (float32 bytes), document and metadata, read through
    Chroma and independent of the order it returns them in."""
    per_record = []
    for page in iter_pages(tree, collection, _DIGEST_PAGE):
        for row, item_id in enumerate(page.ids):
            one = hashlib.sha256(item_id.encode())
            one.update(page.embeddings[row].astype("<f4").tobytes())
            one.update(page.documents[row].encode())
            one.update(json.dumps(page.metadatas[row], sort_keys=True).encode())
            per_record.append(one.digest())
    return hashlib.sha256(b"".join(sorted(per_record))).hexdigest()


def _write_record(settings: Settings, database: str, segment: SegmentRef, tree: Path, *,
                  etags: tuple[str | None, str | None] = (None, None)) -> None:
    """`etags`: the store's etags of the archive and of the vectors part (issue 21) whose bytes were
    checked against their sha256."""
    body = {"key": segment.key, "sha256": segment.sha256, "count": segment.count,
            "archive_etag": etags[0], "vectors_etag": etags[1]}
    target = record_path(settings, database, segment.segment_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    staging.write_text(json.dumps(body, indent=1, sort_keys=True))
    os.replace(staging, target)


def read_record(settings: Settings, database: str, segment_id: str) -> dict | None:
    try:
        return json.loads(record_path(settings, database, segment_id).read_text())
    except (OSError, ValueError):
        return None


def cached(settings: Settings, database: str, segment: SegmentRef) -> Path | None:
    """The cached persist dir of `segment`, if whole and recorded as this segment's content. Entries
    arrive by one atomic rename of a complete tree, so a directory without Chroma's database file, or
    without its record, or recorded with another sha256 or other file sizes, was damaged (or left by an
    older version of this code): drop it, so it is fetched again."""
    path = segment_dir(settings, database, segment)
    if not path.is_dir():
        return None
    if entry_problem(settings, database, segment, path) is not None:
        evict(settings, database, segment)
        return None
    return path


def entry_problem(settings: Settings, database: str, segment: SegmentRef, path: Path, *,
                  expected_digest: str | None = None) -> str | None:
    """What is wrong with the cache entry at `path` (None if nothing): no database file, no record,
    a record of another sha256; given the content_digest of the segment's archive (verify downloads
    it), also a database SQLite's quick_check rejects, or other records (ids, vectors, documents,
    metadata) than the archive's."""
    if not (path / DB_FILE).is_file():
        return f"no {DB_FILE}"
    record = read_record(settings, database, segment.segment_id)
    if record is None:
        return "no integrity record beside the entry"
    if record.get("sha256") != segment.sha256:
        return (f"recorded sha256 {str(record.get('sha256'))[:16]}... is not the manifest's "
                f"{segment.sha256[:16]}...")
    if expected_digest is None:
        return None
    try:
        problem = integrity_problem(path)
        if problem is not None:
            return problem
        if content_digest(path, database) != expected_digest:
            return "its records (ids, vectors, documents, metadata) differ from the segment's archive"
    except Exception as exc:  # unreadable by SQLite or Chroma is the finding
        return f"unreadable ({type(exc).__name__}: {exc})"
    return None


def _check_sha(manifest: SnapshotManifest, segment: SegmentRef) -> None:
    if manifest.sha256 != segment.sha256:
        raise CorruptObjectError(manifest_key(segment.key), f"names archive sha256 {manifest.sha256}, the "
                                                            f"version lists {segment.sha256}")
    named = manifest.vectors.sha256 if manifest.vectors is not None else None
    if segment.vectors_sha256 is not None and named != segment.vectors_sha256:
        raise CorruptObjectError(manifest_key(segment.key), f"names vectors sha256 {named}, the version "
                                                            f"lists {segment.vectors_sha256}")


def check_store_holds(store: ObjectStore, segment: SegmentRef
                      ) -> tuple[SnapshotManifest, tuple[str, str | None]]:
    """The object store still commits `segment`: its manifest names the same sha256 (and vectors part)
    and its archive (and vectors part) have the manifest's sizes. Returns (manifest, the current etags
    of the archive and of the vectors part, None for a segment in one archive). Raises
    ObjectNotFoundError or CorruptObjectError (cheap: no download)."""
    manifest = read_manifest(store, segment.key)
    _check_sha(manifest, segment)
    etags = [_stored_etag(store, manifest.archive_key, manifest.archive_bytes)]
    if manifest.vectors is not None:
        etags.append(_stored_etag(store, manifest.vectors.key, manifest.vectors.size))
    return manifest, (etags[0], etags[1] if len(etags) > 1 else None)


def _stored_etag(store: ObjectStore, key: str, size: int) -> str:
    info = store.head(key)
    if info is None:
        raise ObjectNotFoundError(key)
    if info.size != size:
        raise CorruptObjectError(key, f"archive has {info.size} bytes, manifest says {size}")
    return info.etag


def archive_vouched(store: ObjectStore, settings: Settings, database: str, segment: SegmentRef
                    ) -> tuple[bool, tuple[str, str | None], int]:
    """(whether the stored bytes of the segment's archive and vectors part are known to match their
    sha256 without reading them, their current etags, their total size): check_store_holds, then each
    etag must be the one the manifest recorded at upload or the one this cache recorded when it checked
    the bytes."""
    manifest, etags = check_store_holds(store, segment)
    record = (read_record(settings, database, segment.segment_id) or {}) if cache_enabled(settings) else {}
    vouched = etags[0] in {manifest.archive_etag, record.get("archive_etag")} - {None}
    size = manifest.archive_bytes
    if manifest.vectors is not None:
        vouched = vouched and etags[1] in {manifest.vectors.etag, record.get("vectors_etag")} - {None}
        size += manifest.vectors.size
    return vouched, etags, size


def stored_vectors(store: ObjectStore, settings: Settings, database: str, segment: SegmentRef
                   ) -> ArchivePart | None:
    """The vectors part of `segment` as the store holds it, for a new segment with the same vectors and
    other records (a records-only rewrite, issue 23): only when its bytes are known to match without a
    download (archive_vouched). None for a segment in one archive, or one not vouched for (rewrite it
    whole then). Raises ObjectNotFoundError / CorruptObjectError as check_store_holds."""
    manifest, etags = check_store_holds(store, segment)
    record = (read_record(settings, database, segment.segment_id) or {}) if cache_enabled(settings) else {}
    known = {manifest.vectors.etag, record.get("vectors_etag")} - {None} if manifest.vectors else set()
    if manifest.vectors is None or etags[1] not in known:
        return None
    return manifest.vectors.model_copy(update={"etag": etags[1]})


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


def fetch(store: ObjectStore, settings: Settings, database: str, segment: SegmentRef, *,
          verify: bool = False) -> Path:
    """The cached directory of `segment`, downloading it (sha256 checked) only if it is not cached
    whole. With `verify` (writers, whose new version will reference the segment), the store must
    still hold the segment's archive with bytes known to match its sha256: the archive's etag must be
    the one its manifest recorded at upload or the one this cache saw when it checked the bytes. A
    cached entry whose archive has another etag (changed in the store, or never checked this way) is
    dropped and fetched again, so the sha256 check runs on the store's bytes: a damaged archive then
    raises CorruptObjectError naming its key, however warm the cache (issue 21)."""
    etags: tuple[str | None, str | None] | None = None
    if verify:
        vouched, etags, _ = archive_vouched(store, settings, database, segment)
        if not vouched:
            evict(settings, database, segment)
    hit = cached(settings, database, segment)
    if hit is not None:
        return hit
    final = segment_dir(settings, database, segment)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{segment.segment_id}.fetch-"))
    try:
        manifest = read_manifest(store, segment.key)
        _check_sha(manifest, segment)  # the archive is then checked against it
        if etags is None:  # before the download: a later change of an object then shows as another etag
            etags = (_etag_or_none(store, manifest.archive_key),
                     _etag_or_none(store, manifest.vectors.key) if manifest.vectors else None)
        tree = materialize(store, segment.key, staging / "tree")
        _write_record(settings, database, segment, tree, etags=etags)
        return _move_in(tree, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _etag_or_none(store: ObjectStore, key: str) -> str | None:
    info = store.head(key)
    return info.etag if info is not None else None


def install(settings: Settings, database: str, segment: SegmentRef, persist_dir: Path) -> Path:
    """Move a closed, just-published persist dir into the cache (it is exactly what was archived)."""
    _write_record(settings, database, segment, persist_dir)
    return _move_in(persist_dir, segment_dir(settings, database, segment))


def evict(settings: Settings, database: str, segment: SegmentRef) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(segment_dir(settings, database, segment))
    record_path(settings, database, segment.segment_id).unlink(missing_ok=True)


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
    indexes = settings.cache_dir / database / "ids"  # id_index.py: {segment_id}-{sha}.sqlite3/.etag
    for index in sorted(indexes.iterdir()) if indexes.is_dir() else []:
        if not index.name.startswith(".") and index.name.split("-", 1)[0] not in keep:
            index.unlink(missing_ok=True)
    records = settings.cache_dir / database / "records"
    for record in sorted(records.glob("*.json")) if records.is_dir() else []:
        if record.stem not in keep:
            record.unlink(missing_ok=True)
    return dropped
