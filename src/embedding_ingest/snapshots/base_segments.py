"""The current version's segments as a writer (publish) sees them.

Every segment the new version will reference is checked against the object store first: its archive
must still be there, of its size, with bytes known to match its sha256 (cache.archive_vouched: the
etag recorded at upload or when the bytes were last checked; otherwise it is downloaded and checked),
and its id index is checked the same way (id_index.fetch(verify=True)). Ids and revisions are then read
from the id indexes, so a publish that only adds a tail never downloads or unpacks a segment's vectors
(issue 21); a segment is fetched only when it must be rewritten or merged (`dir`). A segment published
before id indexes existed gets one here (built from its fetched copy), so the next version carries
indexes for all its segments."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from embedding_ingest.config import Settings
from embedding_ingest.snapshots import cache, id_index
from embedding_ingest.snapshots.exceptions import SnapshotCountMismatchError
from embedding_ingest.snapshots.models import ArchivePart, SegmentRef, VersionManifest
from embedding_ingest.snapshots.segments import attach_index, index_file, local_segment
from embedding_ingest.stores.ports import ObjectStore


class BaseSegments:
    """Open with `with BaseSegments(store, settings, base, scratch) as current:`; then
    `current.segments` (the checked refs, with indexes), `current.readers` (one IdIndex per segment,
    same order), `current.sizes` (archive bytes) and `current.dir(n)` (a local persist dir of segment
    n, fetched on first use).
    Raises ObjectNotFoundError / CorruptObjectError naming a missing or damaged object, and
    SnapshotCountMismatchError when an index disagrees with its segment's count."""

    def __init__(self, store: ObjectStore, settings: Settings, base: VersionManifest | None,
                 scratch: Path) -> None:
        self._store, self._settings, self._scratch = store, settings, scratch
        self._database = base.database if base is not None else ""
        self.segments: list[SegmentRef] = list(base.segments) if base is not None else []
        self.readers: list[id_index.IdIndex] = []
        self.sizes: list[int] = []  # archive bytes of each segment (merge_policy)
        self._dirs: dict[int, Path] = {}

    def __enter__(self) -> BaseSegments:
        try:
            for n in range(len(self.segments)):
                self.segments[n] = self._checked(n)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        self.readers = []

    def dir(self, n: int) -> Path:
        """The local persist dir of segment n (its count checked), fetched on first use."""
        if n not in self._dirs:
            self._dirs[n] = local_segment(self._store, self._settings, self._database, self.segments[n],
                                          self._scratch / f"segment-{n}")
        return self._dirs[n]

    def stored_vectors(self, n: int) -> ArchivePart | None:
        """Segment n's vectors part as the store holds it, for a rewrite that keeps its vector files
        (cache.stored_vectors: None when it cannot be reused as is)."""
        return cache.stored_vectors(self._store, self._settings, self._database, self.segments[n])

    def _checked(self, n: int) -> SegmentRef:
        segment = self.segments[n]
        vouched, _, size = cache.archive_vouched(self._store, self._settings, self._database, segment)
        self.sizes.append(size)
        if not vouched:
            self.dir(n)  # downloads the archive and checks it against its sha256
        if segment.ids_key is None:  # published before id indexes: attach one now
            segment = attach_index(self._store, segment, self.dir(n), self._scratch, database=self._database)
            id_index.install(self._settings, self._database, segment, index_file(self._scratch, segment))
        path = id_index.fetch(self._store, self._settings, self._database, segment, self._scratch,
                              verify=True)
        reader = id_index.IdIndex(path)
        self.readers.append(reader)
        if reader.count() != segment.count:
            raise SnapshotCountMismatchError(f"id index of segment {segment.key!r}", segment.count,
                                             reader.count())
        return segment
