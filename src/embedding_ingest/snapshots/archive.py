"""One snapshot = `{prefix}snapshot.tar` (a closed persist directory, uncompressed: vectors do not
compress) + `{prefix}manifest.json`. The archive is uploaded first and the manifest last, so a
manifest is the commit marker: a prefix without one holds no snapshot, whatever else it holds."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import ValidationError

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots.chroma_io import ensure_released
from embedding_ingest.snapshots.exceptions import SnapshotConflictError
from embedding_ingest.snapshots.models import (
    ArchivePart,
    Profile,
    SnapshotManifest,
    archive_key,
    check_prefix,
    manifest_key,
)
from embedding_ingest.stores.exceptions import CorruptObjectError, PreconditionFailedError
from embedding_ingest.stores.ports import ObjectStore

_CHUNK = 1024 * 1024
PACKED_ARCHIVE = ".packed.tar"  # materialize(packed=): the archive, kept for the members left in it


class _HashingWriter:
    """File-like sink for tarfile's streaming mode that hashes and counts what passes through."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


def _normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


# What pack_dir packs of a persist directory: all of it, or one of the two parts a segment is stored
# in (issue 21): "records" = its top-level files (Chroma's chroma.sqlite3: ids, documents, metadata),
# "vectors" = the files in its folders (Chroma's HNSW segment folder: the vectors and their graph).
PackPart = Literal["all", "records", "vectors"]


def pack_dir(persist_dir: Path, archive_path: Path, part: PackPart = "all", *,
             released: bool = False) -> tuple[str, int]:
    """Stream a closed persist directory (or one `part` of it) into an uncompressed tar; returns
    (sha256 hex, size). Members are in sorted order with owners and times cleared, so the same files
    give the same bytes. The tar is a temporary on its way to the object store, which makes it durable
    (one fsync there, not two). `released`: the caller has checked chroma_io.ensure_released itself,
    so files its other readers hold open meanwhile (another part being packed) are not waited for.
    Raises SnapshotBusyError (ensure_released)."""
    if not released:
        ensure_released(persist_dir)
    with archive_path.open("wb") as raw:
        sink = _HashingWriter(raw)
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for dirpath, dirnames, filenames in os.walk(persist_dir):
                dirnames.sort()
                top = Path(dirpath) == Path(persist_dir)
                if (part == "records" and not top) or (part == "vectors" and top):
                    continue
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    if path.is_symlink() or not path.is_file():
                        continue
                    tar.add(path, arcname=path.relative_to(persist_dir).as_posix(), recursive=False,
                            filter=_normalized)
    return sink.sha256.hexdigest(), sink.size


def upload_part(store: ObjectStore, key: str, path: Path, *, sha256: str, size: int) -> ArchivePart:
    """Give a packed part to the store at its content-addressed `key` (an object there already holds
    these bytes: its etag is then not known here, as for a lost create race of an archive)."""
    etag: str | None = None
    with contextlib.suppress(PreconditionFailedError):
        etag = store.upload_file(key, path, if_none_match=True, move=True, sha256=sha256)
    return ArchivePart(key=key, sha256=sha256, size=size, etag=etag)


def upload_snapshot(store: ObjectStore, prefix: str, archive_path: Path, *, sha256: str, size: int,
                    collection: str, count: int, dimensions: int, model: str, profile: Profile,
                    sources: list[str], added: int | None = None,
                    added_ids_digest: str | None = None, deletions: int = 0,
                    superseded: int = 0, metadata_updates: int = 0,
                    vectors: ArchivePart | None = None) -> SnapshotManifest:
    """Archive first, manifest last. The archive key is content-addressed, so an existing object
    there already holds these exact bytes and losing the create race is success. The archive file is
    given to the store (moved in where it can be, issue 21): the caller must not read it afterwards.
    `vectors`: the segment's vectors part, already stored (upload_part); the archive then holds only
    its records. Raises SnapshotConflictError if the prefix was committed with another vectors part."""
    check_prefix(prefix)
    key = archive_key(prefix, sha256)
    etag = upload_part(store, key, archive_path, sha256=sha256, size=size).etag
    manifest = SnapshotManifest(key=prefix, archive_key=key, collection=collection,
                                count=count, dimensions=dimensions, model=model, sha256=sha256,
                                archive_bytes=size, profile=profile, created_at=time.time(),
                                sources=list(sources), added=added, added_ids_digest=added_ids_digest,
                                deletions=deletions, superseded=superseded, archive_etag=etag,
                                metadata_updates=metadata_updates, vectors=vectors)
    try:
        store.put_json(manifest_key(prefix), manifest.model_dump(mode="json"), if_none_match=True)
    except PreconditionFailedError:
        # Someone committed this prefix first (a concurrent or earlier run): theirs stands, if it names
        # the same vectors (a segment's prefix is of both parts' bytes: models.segment_identity).
        theirs = read_manifest(store, prefix)
        if (theirs.vectors and theirs.vectors.sha256) != (vectors and vectors.sha256):
            raise SnapshotConflictError(f"{manifest_key(prefix)} names other vectors than this "
                                        "build's") from None
        return theirs
    return manifest


def read_manifest(store: ObjectStore, prefix: str) -> SnapshotManifest:
    """Raises ObjectNotFoundError (no manifest: nothing committed) or CorruptObjectError."""
    key = manifest_key(check_prefix(prefix))
    raw = store.get_json(key)
    try:
        manifest = SnapshotManifest.model_validate(raw)
    except ValidationError as exc:
        raise CorruptObjectError(key, f"not a snapshot manifest ({exc.error_count()} problems: "
                                      f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']})") from exc
    if manifest.key != prefix:
        raise CorruptObjectError(key, f"manifest describes prefix {manifest.key!r}, not {prefix!r}")
    return manifest


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _safe_extract(archive_path: Path, dest: Path, key: str, skip: frozenset[str] = frozenset()) -> bool:
    """Only regular files and folders, only inside `dest` (tarfile's data filter refuses absolute
    paths, '..', links out of the tree and device files). Members named in `skip` stay in the archive;
    returns whether one did."""
    skipped = False
    try:
        with tarfile.open(archive_path, mode="r:") as tar:
            for member in tar:
                if not (member.isfile() or member.isdir()):
                    raise CorruptObjectError(key, f"archive member {member.name!r} is not a regular file")
                if member.name in skip:
                    skipped = True
                    continue
                tar.extract(member, dest, filter="data")
    except tarfile.TarError as exc:  # includes the data filter's refusals (path traversal)
        raise CorruptObjectError(key, f"unreadable or unsafe tar archive ({exc})") from exc
    except EOFError as exc:
        raise CorruptObjectError(key, "tar archive is truncated") from exc
    return skipped


def packed_member(persist_dir: Path, name: str) -> tuple[Path, int, int] | None:
    """(archive, offset, size) of the member `name` that materialize(..., packed=) left in the
    snapshot's verified archive beside `persist_dir`'s other files, or None."""
    archive_path = Path(persist_dir) / PACKED_ARCHIVE
    if not archive_path.is_file():
        return None
    with tarfile.open(archive_path, mode="r:") as tar:
        for member in tar:
            if member.name == name and member.isfile():
                return archive_path, member.offset_data, member.size
    return None


def _download_checked(store: ObjectStore, key: str, path: Path, *, size: int, sha256: str) -> None:
    """Download `key` to `path` and check it against the manifest's size and sha256 (CorruptObjectError
    naming the key otherwise)."""
    store.download_file(key, path)
    found = path.stat().st_size
    if found != size:
        raise CorruptObjectError(key, f"archive has {found} bytes, manifest says {size}")
    actual = sha256_of(path)
    if actual != sha256:
        raise CorruptObjectError(key, f"sha256 {actual} does not match manifest {sha256}")


def materialize(store: ObjectStore, prefix: str, dest: Path, *, packed: frozenset[str] = frozenset()
                ) -> Path:
    """Download, verify and unpack the snapshot at `prefix` into `dest` (absent or empty) and return
    `dest`: its archive and, for a segment stored in two parts, its vectors part (unpacked into the same
    tree, which is then the directory that was packed). Nothing is left at `dest` if verification fails.
    Members named in `packed` (a flat snapshot's vectors, read
    once in order) are not copied out: the checked archive stays at `dest/PACKED_ARCHIVE` and
    `packed_member` finds them in it (issue 21)."""
    manifest = read_manifest(store, prefix)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInputError(f"cannot materialize {prefix!r} into {dest}: it exists and is not empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.unpack-"))
    try:
        unpacked = staging / "tree"
        unpacked.mkdir()
        archive_path = staging / "archive.tar"
        _download_checked(store, manifest.archive_key, archive_path, size=manifest.archive_bytes,
                          sha256=manifest.sha256)
        if _safe_extract(archive_path, unpacked, manifest.archive_key, packed):
            os.replace(archive_path, unpacked / PACKED_ARCHIVE)
        else:
            archive_path.unlink()
        if manifest.vectors is not None:
            part = staging / "vectors.tar"
            _download_checked(store, manifest.vectors.key, part, size=manifest.vectors.size,
                              sha256=manifest.vectors.sha256)
            _safe_extract(part, unpacked, manifest.vectors.key)
            part.unlink()
        if dest.exists():
            dest.rmdir()
        os.replace(unpacked, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
