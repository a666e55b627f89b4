"""The "flat" snapshot layout: records only, no vector index. For temporary artifacts (deltas and
intermediates), which are never queried, only read back in full by the next merge: building an HNSW
index for them cost more than the final, published index itself (bench/, issue 6).

A flat directory holds
- `flat.json`: {"format": "flat-v1", "collection", "count", "dimensions"};
- `embeddings.f32`: count x dimensions little-endian float32, row-major;
- `records.jsonl`: one {"id", "document", "metadata"} per row, in row order;
- `deletions.json` (only when there are any): {id: revision} of ids to delete (revisions.py);
- `metadata.jsonl` (only when there are any): metadata updates (metadata_update.py, issue 23).
It is packed, hashed and uploaded like a Chroma directory (archive.py), so the manifest, the
content-addressed archive and the verification on download are the same for both layouts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from embedding_ingest import fast_json
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import chroma_io
from embedding_ingest.snapshots.archive import packed_member
from embedding_ingest.snapshots.metadata_update import MetadataUpdates, write_updates
from embedding_ingest.snapshots.models import RecordPage
from embedding_ingest.snapshots.revisions import newer, record_revision, write_deletions
from embedding_ingest.stores.exceptions import CorruptObjectError

FORMAT = "flat-v1"
HEADER = "flat.json"
EMBEDDINGS = "embeddings.f32"
RECORDS = "records.jsonl"
_DTYPE = np.dtype("<f4")
# What a reader of a flat source leaves in its archive (materialize(packed=)): the vectors, read once.
LEFT_PACKED = frozenset({EMBEDDINGS})


def is_flat(persist_dir: Path) -> bool:
    return (Path(persist_dir) / HEADER).is_file()


class FlatWriter:
    """Adds pages like an upsert with only the vectors on disk, so memory stays bounded by a page plus
    the ids, documents and metadata. For a repeated id the newer revision wins, records and deletions
    alike (revisions.py; on a tie the later entry wins); the losers are counted in `superseded`."""

    def __init__(self, persist_dir: Path, collection: str, dimensions: int) -> None:
        self.dir = Path(persist_dir)
        self.dir.mkdir(parents=True, exist_ok=False)
        self.collection = collection
        self.dimensions = dimensions
        self._rows: dict[str, int] = {}  # id -> row, also for rows a later deletion killed
        self._documents: list[str] = []
        self._metadatas: list[dict] = []
        self._revisions: list[str] = []
        self._dead: set[int] = set()
        self.deletions: dict[str, str] = {}  # id -> revision of the deletion that won
        self.metadata = MetadataUpdates()  # the newest metadata update per id (issue 23)
        self.superseded = 0
        self._vectors = (self.dir / EMBEDDINGS).open("w+b")

    @property
    def ids(self) -> set[str]:
        """Ids of the records kept (not of the deletions)."""
        return {item_id for item_id, row in self._rows.items() if row not in self._dead}

    def _incumbent(self, item_id: str) -> str | None:
        if item_id in self.deletions:
            return self.deletions[item_id]
        row = self._rows.get(item_id)
        return None if row is None or row in self._dead else self._revisions[row]

    def add(self, page: RecordPage, where: str) -> None:
        page.validate(self.dimensions, where)
        if not len(page):
            return
        vectors = np.ascontiguousarray(page.embeddings, dtype=_DTYPE)
        fresh = (len(set(page.ids)) == len(page) and self._rows.keys().isdisjoint(page.ids)
                 and self.deletions.keys().isdisjoint(page.ids))
        if fresh:  # the usual case: one sequential write for the whole page
            self._vectors.seek(0, 2)
            self._vectors.write(vectors.tobytes())
            for item_id, document, metadata in zip(page.ids, page.documents, page.metadatas, strict=True):
                self._rows[item_id] = len(self._documents)
                self._documents.append(document)
                self._metadatas.append(metadata)
                self._revisions.append(record_revision(metadata))
            return
        row_bytes = self.dimensions * _DTYPE.itemsize
        for index, item_id in enumerate(page.ids):
            revision = record_revision(page.metadatas[index])
            incumbent = self._incumbent(item_id)
            if incumbent is not None:
                self.superseded += 1  # one of the two entries loses, whichever it is
                if not newer(revision, incumbent):
                    continue
            self.deletions.pop(item_id, None)
            row = self._rows.get(item_id)
            if row is None:
                row = self._rows[item_id] = len(self._documents)
                self._documents.append(page.documents[index])
                self._metadatas.append(page.metadatas[index])
                self._revisions.append(revision)
            else:
                self._dead.discard(row)
                self._documents[row] = page.documents[index]
                self._metadatas[row] = page.metadatas[index]
                self._revisions[row] = revision
            self._vectors.seek(row * row_bytes)
            self._vectors.write(vectors[index].tobytes())

    def delete(self, deletions: Mapping[str, str]) -> None:
        """Apply deletions `{id: revision}` (see revisions.py)."""
        for item_id, revision in deletions.items():
            incumbent = self._incumbent(item_id)
            if incumbent is not None:
                self.superseded += 1
                if not newer(revision, incumbent):
                    continue
            row = self._rows.get(item_id)
            if row is not None:
                self._dead.add(row)
            self.deletions[item_id] = revision

    def close(self) -> int:
        """Write the records, the deletions and the header (last: a directory with a header is
        complete). Returns the number of records."""
        self._vectors.close()
        ids = sorted(self.ids, key=self._rows.__getitem__)
        if self._dead:  # rows killed by a deletion leave the vector file too
            self._compact_vectors([self._rows[item_id] for item_id in ids])
        with (self.dir / RECORDS).open("wb") as out:
            for item_id in ids:
                row = self._rows[item_id]
                out.write(fast_json.dumps({"id": item_id, "document": self._documents[row],
                                           "metadata": self._metadatas[row]}) + b"\n")
        write_deletions(self.dir, self.deletions)
        write_updates(self.dir, self.metadata)
        header = {"format": FORMAT, "collection": self.collection, "count": len(ids),
                  "dimensions": self.dimensions, "deletions": len(self.deletions),
                  "metadata_updates": len(self.metadata)}
        (self.dir / HEADER).write_text(json.dumps(header), encoding="utf-8")
        return len(ids)

    def _compact_vectors(self, rows: list[int]) -> None:
        path = self.dir / EMBEDDINGS
        total = len(self._documents)
        if total and self.dimensions:
            block = np.fromfile(path, dtype=_DTYPE).reshape(total, self.dimensions)
            kept = block[rows] if rows else np.zeros((0, self.dimensions), _DTYPE)
        else:
            kept = np.zeros((0, self.dimensions), _DTYPE)
        tmp = path.with_suffix(".tmp")
        kept.astype(_DTYPE).tofile(tmp)
        tmp.replace(path)

    def abort(self) -> None:
        self._vectors.close()


def _header(persist_dir: Path, collection: str) -> dict:
    path = persist_dir / HEADER
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
        count, dimensions = int(header["count"]), int(header["dimensions"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptObjectError(str(path), f"not a flat snapshot header ({exc})") from exc
    if header.get("format") != FORMAT:
        raise CorruptObjectError(str(path), f"unknown flat format {header.get('format')!r}")
    if header.get("collection") != collection:
        raise InvalidInputError(f"{persist_dir} holds collection {header.get('collection')!r}, "
                                f"not {collection!r}")
    path, _, size = _vectors(persist_dir)
    if size != count * dimensions * _DTYPE.itemsize:
        raise CorruptObjectError(str(path), f"{size} bytes, expected {count} x {dimensions} float32 values")
    return header


def _vectors(persist_dir: Path) -> tuple[Path, int, int]:
    """(file, offset, size) of the vectors: `embeddings.f32`, or that member left in the snapshot's
    archive by materialize(packed=...)."""
    path = persist_dir / EMBEDDINGS
    if not path.exists() and (member := packed_member(persist_dir, EMBEDDINGS)) is not None:
        return member
    return path, 0, path.stat().st_size


def iter_flat_pages(persist_dir: Path, collection: str, page_size: int = 1000) -> Iterator[RecordPage]:
    if page_size <= 0:
        raise ValueError(f"page_size must be positive, got {page_size}")
    persist_dir = Path(persist_dir)
    header = _header(persist_dir, collection)
    count, dimensions = header["count"], header["dimensions"]
    records_path = persist_dir / RECORDS
    path, offset, _ = _vectors(persist_dir)
    with path.open("rb") as vectors, records_path.open("rb") as records:
        vectors.seek(offset)
        for start in range(0, count, page_size):
            rows = min(page_size, count - start)
            # One read straight into the page's array (no bytes object, no copy of it).
            block = np.fromfile(vectors, dtype=_DTYPE, count=rows * dimensions)
            if block.size != rows * dimensions:
                raise CorruptObjectError(str(path), f"vectors end before row {start + rows}")
            lines = [records.readline() for _ in range(rows)]
            try:
                parsed = [fast_json.loads(line) for line in lines]
                ids = [p["id"] for p in parsed]
                documents = [p["document"] for p in parsed]
                metadatas = [p["metadata"] for p in parsed]
            except (ValueError, KeyError, TypeError) as exc:
                raise CorruptObjectError(str(records_path), f"bad record near row {start} ({exc})") from exc
            yield RecordPage(ids=ids, embeddings=block.reshape(rows, dimensions),
                             metadatas=metadatas, documents=documents)
        if records.readline():
            raise CorruptObjectError(str(records_path), f"more records than the header's {count}")


def iter_pages(persist_dir: Path, collection: str, page_size: int = 1000) -> Iterator[RecordPage]:
    """Every record of `collection` in a snapshot directory of either layout, a page at a time."""
    if is_flat(persist_dir):
        return iter_flat_pages(persist_dir, collection, page_size)
    return chroma_io.iter_pages(persist_dir, collection, page_size)
