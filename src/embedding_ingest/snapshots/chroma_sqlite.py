"""Reading a closed Chroma persist directory straight from its `chroma.sqlite3`, without opening it in
Chroma: every SQL this project runs on Chroma's own file is here.

Why: touching a collection through Chroma loads its whole HNSW index (measured: +70 MB and 0.4 s for
10,000 x 1536-d; the index of 100,000 is ~650 MB), which a publish that only asks "which of these ids
are published, at which revision?" must not pay (bench/final_merge.py), nor MarkBatchesComplete (for
a 20,000 x 1536-d publish: 2.7 s through Chroma, well under one from SQLite).

The price is reading Chroma's internal tables (`collections`, `segments`, `embeddings`,
`embedding_metadata`, `max_seq_id`, `embeddings_queue`), which no Chroma release promises to keep. So
the reader is guarded: it refuses to run beside another chromadb than the one it was written for, and
a file at another schema migration level than that chromadb writes, each with one line naming what it
found and what it supports. tests/contract/test_chroma_sqlite_contract.py checks, on directories the
installed chromadb writes, that it answers exactly as Chroma's own `collection.get()` does.

One write (issue 23): `replace_living` puts a metadata update's living keys into a copy's
chroma.sqlite3, so a metadata-only rewrite leaves the vector files as they were and only the records
are re-packed; the contract test checks that `get`, filters and queries then answer exactly as after
Chroma's own `update`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import chromadb

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.living_keys import is_living_key
from embedding_ingest.snapshots.exceptions import ChromaFormatError

DB_FILE = "chroma.sqlite3"
SUPPORTED_CHROMADB = "1.5.9"
# The migration level chromadb 1.5.9 leaves in chroma.sqlite3: the highest `version` per `dir` of its
# `migrations` table (read from a directory it wrote: sysdb 00001-00010, metadb 00001-00006 with the
# metadata arrays of 00006, embeddings_queue 00001-00002).
SUPPORTED_MIGRATIONS: Mapping[str, int] = {"embeddings_queue": 2, "metadb": 6, "sysdb": 10}
_VERSION_KEY = "metadata_version"  # metadata_update.VERSION_KEY (that module imports this one)
_STEP = 500  # ids per statement (SQLite's default host-parameter limit is 32,766)
_DOCUMENT_KEY = "chroma:document"  # Chroma keeps a record's document as this metadata key


def _levels(levels: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {level}" for name, level in sorted(levels.items())) or "none"


def check_chromadb_version(installed: str | None = None) -> None:
    """Raise ChromaFormatError unless the chromadb in use (`installed`, default the imported one) is
    the one this reader was written for."""
    found = chromadb.__version__ if installed is None else installed
    if found != SUPPORTED_CHROMADB:
        raise ChromaFormatError(f"chromadb {found} is installed; the Chroma SQLite reader "
                                f"(snapshots/chroma_sqlite.py) supports chromadb {SUPPORTED_CHROMADB} only")


def _connect(persist_dir: Path, *, writable: bool = False, any_thread: bool = False) -> sqlite3.Connection:
    path = Path(persist_dir) / DB_FILE
    if not path.is_file():
        raise ChromaFormatError(f"{persist_dir}: no {DB_FILE}; not a Chroma persist directory")
    return sqlite3.connect(f"file:{path}?mode={'rw' if writable else 'ro'}", uri=True,
                           check_same_thread=not any_thread)


def migration_levels(db: sqlite3.Connection) -> dict[str, int]:
    """{migrations dir: highest version applied} of an open chroma.sqlite3."""
    try:
        return {name: int(level) for name, level in
                db.execute("SELECT dir, MAX(version) FROM migrations GROUP BY dir")}
    except sqlite3.DatabaseError:  # no migrations table, or not SQLite at all
        return {}


class StoredRecords:
    """Membership, revisions and count of one collection of a closed persist directory, read-only
    unless `writable` (then only replace_living writes, on a copy no Chroma client has open).

    Raises ChromaFormatError (one line, naming the directory) when the installed chromadb or the file's
    migration level is not the supported one, when the directory has no collection `collection`
    or no metadata segment for it, or when that segment has not applied all of Chroma's log for it (it
    would answer for an older state than Chroma would). Use as a context manager, or call close()."""

    def __init__(self, persist_dir: Path, collection: str, *, writable: bool = False,
                 any_thread: bool = False) -> None:
        check_chromadb_version()
        self.persist_dir = Path(persist_dir)
        self.collection = collection
        self._collection_id = ""
        self._db = _connect(self.persist_dir, writable=writable, any_thread=any_thread)
        try:
            self._segment = self._check_and_find_segment()
            # None: look every time (a writable file may gain arrays); else whether any record has one
            self._arrays = None if writable else self._db.execute(
                "SELECT EXISTS (SELECT 1 FROM embedding_metadata_array)").fetchone()[0] == 1
        except BaseException:
            self._db.close()
            raise

    def _check_and_find_segment(self) -> str:
        where = f"{self.persist_dir}/{DB_FILE}"
        levels = migration_levels(self._db)
        if levels != dict(SUPPORTED_MIGRATIONS):
            raise ChromaFormatError(f"{where} is at Chroma schema migration level {_levels(levels)}; the "
                                    f"reader supports {_levels(SUPPORTED_MIGRATIONS)} "
                                    f"(chromadb {SUPPORTED_CHROMADB})")
        found = self._db.execute("SELECT id FROM collections WHERE name = ?", (self.collection,)).fetchall()
        if len(found) != 1:
            names = sorted(row[0] for row in self._db.execute("SELECT name FROM collections"))
            raise ChromaFormatError(f"{where} has {len(found)} collections named {self.collection!r} "
                                    f"(one expected); it holds {names}")
        collection_id = self._collection_id = found[0][0]
        segment, applied_seq = self._segment_of("METADATA")
        logged = self._db.execute("SELECT MAX(seq_id) FROM embeddings_queue WHERE topic LIKE ?",
                                  (f"%/{collection_id}",)).fetchone()
        logged_seq = int(logged[0] or 0)
        if logged_seq > applied_seq:
            raise ChromaFormatError(f"{where}: the metadata segment of {self.collection!r} applied Chroma's "
                                    f"log up to {applied_seq}, the log holds {logged_seq}; open the "
                                    "directory in Chroma once to catch it up")
        return segment

    def unindexed(self) -> tuple[str, list[tuple[int, str, bytes | None, str | None]]]:
        """(the id of the collection's vector segment, the entries of Chroma's log that segment has not yet
        written into its index files: [(operation code, id, vector bytes, encoding)] in log order).
        Chroma writes its index files every `sync_threshold` records and replays the rest of its log
        when it opens the directory (chroma_hnsw.py searches them itself). Raises ChromaFormatError when
        the collection has no single vector segment."""
        segment, applied = self._segment_of("VECTOR")
        rows = self._db.execute(
            "SELECT operation, id, vector, encoding FROM embeddings_queue WHERE topic LIKE ? AND seq_id > ? "
            "ORDER BY seq_id", (f"%/{self._collection_id}", applied)).fetchall()
        return segment, rows

    def _segment_of(self, scope: str) -> tuple[str, int]:
        """(id, the last log entry applied) of the collection's one segment of `scope` (METADATA or
        VECTOR). Raises ChromaFormatError when there is not exactly one."""
        segments = self._db.execute("SELECT id FROM segments WHERE collection = ? AND scope = ?",
                                    (self._collection_id, scope)).fetchall()
        if len(segments) != 1:
            raise ChromaFormatError(f"{self.persist_dir}/{DB_FILE}: collection {self.collection!r} has "
                                    f"{len(segments)} {scope.lower()} segments (one expected)")
        applied = self._db.execute("SELECT seq_id FROM max_seq_id WHERE segment_id = ?",
                                   (segments[0][0],)).fetchone()
        return segments[0][0], int(applied[0]) if applied else 0

    def count(self) -> int:
        """Records in the collection (as `collection.count()`)."""
        return int(self._db.execute("SELECT COUNT(*) FROM embeddings WHERE segment_id = ?",
                                    (self._segment,)).fetchone()[0])

    def revisions(self, ids: Sequence[str], key: str = "revision") -> dict[str, str]:
        """id -> its `key` metadata ("" when it has none, or a value that is not a string) for those of
        `ids` the collection holds."""
        found: dict[str, str] = {}
        for start in range(0, len(ids), _STEP):
            chunk = list(ids[start:start + _STEP])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT e.embedding_id, m.string_value FROM embeddings e LEFT JOIN embedding_metadata m "
                f"ON m.id = e.id AND m.key = ? WHERE e.segment_id = ? AND e.embedding_id IN ({marks})",
                (key, self._segment, *chunk))
            for item_id, value in rows:
                found[item_id] = value if isinstance(value, str) else ""
        return found

    def all_revisions(self, key: str = "revision") -> Iterator[tuple[str, str]]:
        """(id, its `key` metadata or "") of every record, in id order (id_index.build reads these)."""
        rows = self._db.execute(
            "SELECT e.embedding_id, m.string_value FROM embeddings e LEFT JOIN embedding_metadata m "
            "ON m.id = e.id AND m.key = ? WHERE e.segment_id = ? ORDER BY e.embedding_id",
            (key, self._segment))
        for item_id, value in rows:
            yield item_id, value if isinstance(value, str) else ""

    def all_metadata_versions(self) -> Iterator[tuple[str, int]]:
        """(id, its `metadata_version`) of every record that has one, in id order (issue 23)."""
        rows = self._db.execute(
            "SELECT e.embedding_id, m.int_value FROM embeddings e JOIN embedding_metadata m "
            "ON m.id = e.id AND m.key = 'metadata_version' WHERE e.segment_id = ? ORDER BY e.embedding_id",
            (self._segment,))
        for item_id, value in rows:
            if isinstance(value, int):
                yield item_id, value

    def metadata_versions(self, ids: Sequence[str]) -> dict[str, int]:
        """id -> its `metadata_version` (0 when it has none; issue 23) for those of `ids` held here."""
        found: dict[str, int] = {}
        for start in range(0, len(ids), _STEP):
            chunk = list(ids[start:start + _STEP])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT e.embedding_id, m.int_value FROM embeddings e LEFT JOIN embedding_metadata m "
                "ON m.id = e.id AND m.key = 'metadata_version' WHERE e.segment_id = ? "
                f"AND e.embedding_id IN ({marks})", (self._segment, *chunk))
            for item_id, value in rows:
                found[item_id] = value if isinstance(value, int) else 0
        return found

    def records(self, ids: Sequence[str]) -> dict[str, tuple[str | None, dict[str, Any] | None]]:
        """id -> (document, metadata) for those of `ids` the collection holds, as `collection.get(ids,
        include=["documents", "metadatas"])` answers: metadata None when a record has none, list values
        in the order Chroma stored them (the consumer reads a query's winners through this, issue 21)."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _STEP):
            chunk = unique[start:start + _STEP]
            marks = ",".join("?" * len(chunk))
            for item_id, key, *values in self._db.execute(
                    "SELECT e.embedding_id, m.key, m.string_value, m.int_value, m.float_value, m.bool_value "
                    "FROM embeddings e LEFT JOIN embedding_metadata m ON m.id = e.id "
                    f"WHERE e.segment_id = ? AND e.embedding_id IN ({marks})", (self._segment, *chunk)):
                fields = found.setdefault(item_id, {})
                if key is not None:
                    fields[key] = _value(*values)
            if self._arrays is not False:  # a read-only file without any array skips this statement
                for item_id, key, *values in self._db.execute(
                        "SELECT e.embedding_id, a.key, a.string_value, a.int_value, a.float_value, "
                        "a.bool_value FROM embeddings e JOIN embedding_metadata_array a ON a.id = e.id "
                        f"WHERE e.segment_id = ? AND e.embedding_id IN ({marks}) ORDER BY a.rowid",
                        (self._segment, *chunk)):
                    found[item_id].setdefault(key, []).append(_value(*values))
        return {item_id: (fields.pop(_DOCUMENT_KEY, None), fields or None)
                for item_id, fields in found.items()}

    def replace_living(self, updates: Mapping[str, tuple[int, Mapping[str, Any]]]) -> int:
        """Give each id of `updates` ({id: (metadata_version, living metadata)}) exactly that living
        metadata and version, in one transaction: what `collection.update` with the dropped living keys
        sent as None does (snapshots/metadata_update.py), written where Chroma 1.5.9 keeps metadata
        (scalars in embedding_metadata, arrays one row per element in embedding_metadata_array), so
        the vector files are not touched (issue 23's records-only repack). Returns how many ids were
        updated; an id the collection lacks is not (the caller checks the count)."""
        ids = sorted(updates)
        rows: dict[str, int] = {}
        for start in range(0, len(ids), _STEP):
            chunk = ids[start:start + _STEP]
            rows.update(self._db.execute(
                "SELECT embedding_id, id FROM embeddings WHERE segment_id = ? AND embedding_id IN "
                f"({','.join('?' * len(chunk))})", (self._segment, *chunk)))
        scalars: list[tuple[Any, ...]] = []
        arrays: list[tuple[Any, ...]] = []
        for item_id, row in rows.items():
            version, living = updates[item_id]
            for key, value in {**living, _VERSION_KEY: version}.items():
                target = arrays if isinstance(value, list) else scalars
                target.extend((row, key, *_typed(item_id, key, element)) for element in
                              (value if isinstance(value, list) else [value]))
        with self._db:
            for table in ("embedding_metadata", "embedding_metadata_array"):
                present = [(row, key) for row in rows.values() for (key,) in self._db.execute(
                    f"SELECT DISTINCT key FROM {table} WHERE id = ?", (row,))
                    if is_living_key(key) or key == _VERSION_KEY]
                self._db.executemany(f"DELETE FROM {table} WHERE id = ? AND key = ?", present)
            insert = "(id, key, string_value, int_value, float_value, bool_value) VALUES (?, ?, ?, ?, ?, ?)"
            self._db.executemany(f"INSERT INTO embedding_metadata {insert}", scalars)
            self._db.executemany(f"INSERT INTO embedding_metadata_array {insert}", arrays)
        return len(rows)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StoredRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _value(string: str | None, integer: int | None, real: float | None, boolean: int | None) -> Any:
    """One stored metadata value (or list element) back as Chroma returns it."""
    if boolean is not None:
        return bool(boolean)
    if integer is not None:
        return integer
    if real is not None:
        return real
    return string


def _typed(item_id: str, key: str, value: Any) -> tuple[Any, Any, Any, Any]:
    """(string_value, int_value, float_value, bool_value) of one metadata value (or list element), as
    Chroma stores it. Raises InvalidInputError naming the id and key for anything else (None, a
    mapping, a nested list): Chroma's own update would drop or refuse it, never store its str()."""
    if isinstance(value, bool):
        return None, None, None, int(value)
    if isinstance(value, int):
        return None, value, None, None
    if isinstance(value, float):
        return None, None, value, None
    if isinstance(value, str):
        return value, None, None, None
    raise InvalidInputError(f"record {item_id!r}: metadata {key!r} is a {type(value).__name__} "
                            f"({value!r:.40}); only str, int, float, bool or a list of those can be stored")


def stored_count(persist_dir: Path, collection: str) -> int:
    """Records in `collection` of a closed persist directory (StoredRecords: without loading its index)."""
    with StoredRecords(persist_dir, collection) as records:
        return records.count()


def integrity_problem(persist_dir: Path) -> str | None:
    """What SQLite's quick_check finds wrong with the directory's chroma.sqlite3 (None: nothing). Needs
    no guard: it reads SQLite's pages, not Chroma's tables."""
    with contextlib.closing(_connect(persist_dir)) as db:
        verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    if verdict == "ok":
        return None
    return f"{DB_FILE} fails SQLite's quick_check ({' '.join(verdict.split())})"  # one line
