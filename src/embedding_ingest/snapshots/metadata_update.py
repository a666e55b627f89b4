"""Metadata updates in snapshots (issue 23): living metadata (receipts/living.py) applied to published
records without touching their vectors or documents.

This module is the one seam between metadata updates and the snapshot format: how updates travel in a
flat delta (`metadata.jsonl`), how a record's metadata version is read, and how a closed segment is
rewritten copy-on-write with Chroma's own `collection.update`. A later segment format (issue 21's id
index, split vectors/records archives) changes this module only.

Rules (newest wins per id, as revisions.py does for content):
- every published record carries `metadata_version` (an int; a record without it is version 0);
- an update `{id: (version, living metadata)}` applies only to a record whose version is lower, so a
  rerun or an old update arriving late changes nothing;
- a re-embedded record replacing a published one whose metadata_version is greater keeps the
  published living keys and version (its new document and vector go in): the newer metadata wins
  whichever way it arrives; found from the id indexes' versions (newer_published), carried over when
  the published segment is rewritten without the old record (rewrite_segment, carry_into_tail);
- `collection.update` merges keys (chromadb 1.5.9: the given keys replace theirs, the others, the
  document and the vector stay; a key set to None is deleted), so living keys the record has and the
  update lacks are sent as None; the update of an unknown id is silently ignored by Chroma, so only
  ids known to be present are sent, and the count is checked.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedding_ingest.living_keys import dropped_keys, living_part
from embedding_ingest.snapshots import chroma_io, chroma_sqlite
from embedding_ingest.snapshots.exceptions import SnapshotCountMismatchError
from embedding_ingest.stores.exceptions import CorruptObjectError

VERSION_KEY = "metadata_version"
FILE_NAME = "metadata.jsonl"  # a flat directory's metadata updates (snapshots/flat.py)


@dataclass
class MetadataUpdates:
    """Updates by id: `{id: (metadata_version, living metadata)}`; `add` keeps the newest per id."""

    entries: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)

    def add(self, item_id: str, version: int, metadata: Mapping[str, Any]) -> bool:
        """Keep this update unless the one held for `item_id` is as new; True when kept."""
        held = self.entries.get(item_id)
        if held is not None and held[0] >= version:
            return False
        self.entries[item_id] = (version, living_part(metadata))
        return True

    def merge(self, other: MetadataUpdates) -> None:
        for item_id, (version, metadata) in other.entries.items():
            self.add(item_id, version, metadata)

    def __len__(self) -> int:
        return len(self.entries)


def record_version(metadata: Mapping[str, Any] | None) -> int:
    """A record's metadata version (0 for records published before versions existed)."""
    value = (metadata or {}).get(VERSION_KEY, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def write_updates(persist_dir: Path, updates: MetadataUpdates) -> None:
    """Write `metadata.jsonl` (ids sorted, so equal updates make equal bytes); nothing when empty."""
    if not updates:
        return
    with (Path(persist_dir) / FILE_NAME).open("w", encoding="utf-8") as out:
        for item_id in sorted(updates.entries):
            version, metadata = updates.entries[item_id]
            out.write(json.dumps({"id": item_id, VERSION_KEY: version, "metadata": metadata},
                                 sort_keys=True, separators=(",", ":")) + "\n")


def read_updates(persist_dir: Path) -> MetadataUpdates:
    """The updates of a flat directory (none when it has no `metadata.jsonl`). Raises
    CorruptObjectError for a malformed line."""
    path = Path(persist_dir) / FILE_NAME
    updates = MetadataUpdates()
    if not path.is_file():
        return updates
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
                item_id, version, metadata = entry["id"], entry[VERSION_KEY], entry["metadata"]
                if not (isinstance(item_id, str) and isinstance(version, int) and isinstance(metadata, dict)):
                    raise TypeError("id, metadata_version or metadata of the wrong type")
            except (ValueError, KeyError, TypeError) as exc:
                raise CorruptObjectError(str(path), f"bad metadata update at line {number} ({exc})") from exc
            updates.add(item_id, version, metadata)
    return updates


def update_metadata(collection: Any, updates: Mapping[str, tuple[int, dict[str, Any]]],
                    batch_size: int) -> int:
    """Apply `updates` (ids all present in `collection`) with Chroma's own `update`: each record gets
    the update's living keys and version, and loses the living keys the update lacks. Returns how many
    records were updated."""
    ids = sorted(updates)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        current = collection.get(ids=chunk, include=["metadatas"])
        held = dict(zip(current["ids"], current["metadatas"], strict=True))
        missing = [item_id for item_id in chunk if item_id not in held]
        if missing:
            raise SnapshotCountMismatchError(f"metadata update of {missing[:3]}", len(chunk), len(held))
        metadatas = []
        for item_id in chunk:
            version, living = updates[item_id]
            cleared: dict[str, Any] = dict.fromkeys(dropped_keys(held[item_id] or {}, living))
            metadatas.append({**cleared, **living, VERSION_KEY: version})
        collection.update(ids=chunk, metadatas=metadatas)
    return len(ids)


def rewrite_segment(segment_dir: Path, work: Path, *, database: str, remove: set[str],
                    updates: Mapping[str, tuple[int, dict[str, Any]]], expected: int,
                    carry: Collection[str] = (), carried: MetadataUpdates | None = None) -> int:
    """Copy a closed segment to `work` without the ids in `remove` and with `updates` applied (ids all
    present in it, none in `remove`): copy-on-write, the published segment is never touched. The
    living metadata of the `carry` ids (among `remove`: replaced by records with an older
    metadata_version) is added to `carried` before they go. Returns the new count, checked.
    Metadata updates alone are written straight into the copy's chroma.sqlite3 (StoredRecords.
    replace_living), without opening it in Chroma: Chroma's `update` rewrites the HNSW files too (seen
    with chromadb 1.5.9), which would cost the records-only repack (issue 21's split) its point."""
    shutil.copytree(segment_dir, work)
    if not remove and not carry:
        with chroma_sqlite.StoredRecords(work, database, writable=True) as records:
            updated = records.replace_living(updates)
            count = records.count()
            missing = sorted(set(updates) - records.metadata_versions(list(updates)).keys()) \
                if updated != len(updates) else []
        if updated != len(updates):
            raise SnapshotCountMismatchError(f"metadata update of segment {segment_dir.name}, its ids to "
                                             f"update (not in it: {missing[:3]})", len(updates), updated)
        if count != expected:
            raise SnapshotCountMismatchError(f"metadata update of segment {segment_dir.name}, its records",
                                             expected, count)
        return count
    with chroma_io.open_client(work) as client:
        collection = chroma_io.get_collection(client, database)
        step = client.get_max_batch_size()
        if carry and carried is not None:
            _read_living(collection, sorted(carry), step, carried)
        doomed = sorted(remove)
        for start in range(0, len(doomed), step):
            collection.delete(ids=doomed[start:start + step])
        if updates:
            update_metadata(collection, updates, step)
        count = collection.count()
        del collection
    if count != expected - len(remove):
        raise SnapshotCountMismatchError(f"segment {segment_dir.name} without {len(remove)} ids",
                                         expected - len(remove), count)
    return count


def vector_files(persist_dir: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of each file in the folders of a persist directory: Chroma's HNSW folder, what a
    segment's vectors part holds (archive.pack_dir "vectors"). The same before and after a rewrite of
    a copy (copytree keeps sizes and times): no vector file was written, so the segment's stored
    vectors part still holds the copy's, and only its records need packing (issue 23). Chromadb 1.5.9's
    `collection.update` of metadata leaves them so (checked on 3,000 records); a delete does not."""
    root = Path(persist_dir)
    found: dict[str, tuple[int, int]] = {}
    for path in root.rglob("*"):
        if path.parent != root and path.is_file() and not path.is_symlink():
            stat = path.stat()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def _read_living(collection: Any, ids: Sequence[str], batch_size: int, into: MetadataUpdates) -> None:
    for start in range(0, len(ids), batch_size):
        got = collection.get(ids=list(ids[start:start + batch_size]), include=["metadatas"])
        for item_id, metadata in zip(got["ids"], got["metadatas"], strict=True):
            into.add(item_id, record_version(metadata), metadata or {})


def newer_published(held: Sequence[Any], removals: Mapping[int, set[str]], incoming: Mapping[str, int]
                    ) -> dict[int, set[str]]:
    """segment index -> the ids leaving it for a new record (`incoming`: id -> the new record's
    metadata_version) whose published metadata_version is greater (`held`: one reader per segment)."""
    found: dict[int, set[str]] = {}
    for index, leaving in removals.items():
        wanted = sorted(item_id for item_id in leaving if item_id in incoming)
        for item_id, version in held[index].metadata_versions(wanted).items():
            if version > incoming[item_id]:
                found.setdefault(index, set()).add(item_id)
    return found


def carry_into_tail(tail_dir: Path, database: str, carried: MetadataUpdates) -> int:
    """Give the new tail's records the carried published living metadata where it is newer than
    theirs (a metadata update applied in the same publish may be newer still). Returns how many."""
    if not carried:
        return 0
    with chroma_io.open_client(tail_dir) as client:
        tail = chroma_io.get_collection(client, database)
        done = _update_newer(tail, carried, sorted(carried.entries), client.get_max_batch_size())
        del tail
    return done


def _update_newer(collection: Any, updates: MetadataUpdates, ids: Sequence[str], batch_size: int) -> int:
    """Apply to `collection` those of `updates` (for `ids`, all held there) newer than its records."""
    changes: dict[str, tuple[int, dict[str, Any]]] = {}
    for start in range(0, len(ids), batch_size):
        got = collection.get(ids=list(ids[start:start + batch_size]), include=["metadatas"])
        for item_id, metadata in zip(got["ids"], got["metadatas"], strict=True):
            if updates.entries[item_id][0] > record_version(metadata):
                changes[item_id] = updates.entries[item_id]
    if changes:
        update_metadata(collection, changes, batch_size)
    return len(changes)


@dataclass
class MetadataPlan:
    """Where a publish applies its metadata updates: to records of its new tail (done in place), and to
    records of current segments (`changes`: segment index -> updates, applied by rewrite_segment)."""

    changes: dict[int, dict[str, tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    in_tail: int = 0
    skipped: int = 0  # for ids no longer published, or already at that version or newer
    # ids replaced by a record with an older metadata_version, by segment (newer_published), and
    # their published living metadata once read (rewrite_segment; carry_into_tail applies it)
    newer_published: dict[int, set[str]] = field(default_factory=dict)
    carried: MetadataUpdates = field(default_factory=MetadataUpdates)

    @property
    def updated(self) -> int:
        return self.in_tail + sum(len(found) for found in self.changes.values())


def plan_updates(updates: MetadataUpdates, held: Sequence[Any], tail: Any,
                 written: set[str], removals: Mapping[int, set[str]], batch_size: int) -> MetadataPlan:
    """Apply to the new `tail` collection the updates of its records (`written`) that are newer than
    them, and plan those of records in current segments (`held`, read from SQLite) that are newer than
    the published ones. Ids leaving their segment in this publish (`removals`), and ids published
    nowhere, are skipped: their newer record or their deletion wins."""
    plan = MetadataPlan()
    ids = sorted(updates.entries)
    plan.in_tail = _update_newer(tail, updates, [item_id for item_id in ids if item_id in written],
                                 batch_size)
    elsewhere = [item_id for item_id in ids if item_id not in written]
    for index, records in enumerate(held):
        leaving = removals.get(index, set())
        for item_id, version in records.metadata_versions(elsewhere).items():
            if item_id not in leaving and updates.entries[item_id][0] > version:
                plan.changes.setdefault(index, {})[item_id] = updates.entries[item_id]
    plan.skipped = len(ids) - plan.updated
    return plan
