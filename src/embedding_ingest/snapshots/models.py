"""Value types of the snapshot lifecycle: pages of records, the manifest (commit marker of a snapshot
prefix), and the results of publishing and querying."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots.exceptions import DimensionMismatchError
from embedding_ingest.stores.records import SnapshotVersion

# "flat": records only, no index (temporary artifacts; see flat.py). The others are Chroma directories.
Profile = Literal["flat", "cheap", "quality"]
ARCHIVE_NAME = "snapshot.tar"  # archives are stored as snapshot-{sha256[:16]}.tar
MANIFEST_NAME = "manifest.json"
_SCALARS = (str, int, float, bool)  # what Chroma metadata holds (as EmbeddingItem.metadata)


def archive_key(prefix: str, sha256: str) -> str:
    """Content-addressed, so two builds racing on one prefix never overwrite each other's archive:
    whichever manifest is committed first names exactly the bytes it describes."""
    return f"{prefix}snapshot-{sha256[:16]}.tar"


def vectors_key(database: str, sha256: str) -> str:
    """Where a segment's vectors part lives: content-addressed per database, outside any one segment's
    prefix, so segments that differ only in their records (a metadata-only rewrite) share it."""
    return f"{database}/snapshot/vectors/vectors-{sha256[:32]}.tar"


def manifest_key(prefix: str) -> str:
    return f"{prefix}{MANIFEST_NAME}"


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix or not prefix.endswith("/") or prefix.startswith("/"):
        raise InvalidInputError(f"snapshot prefix must be a relative key ending in '/', got {prefix!r}")
    return prefix


def check_metadata_value(value: Any) -> str | None:
    """Why Chroma 1.5.9 would refuse `value` as a metadata value, or None: a string, number or bool,
    or a non-empty array whose elements are all of one of those types (checked against chromadb 1.5.9's
    add/update, issue 23 research: [] and mixed arrays are refused, None only means "delete" in update)."""
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, list):
        if not value:
            return "is an empty array (Chroma refuses them; leave the key out)"
        first = type(value[0])
        if first not in _SCALARS or any(type(element) is not first for element in value):
            return "must be an array of strings, numbers or bools, all of one type"
        return None
    return f"must be a string, number, bool or array of them, got {type(value).__name__}"


@dataclass(frozen=True)
class RecordPage:
    """A bounded slice of a collection: row i of every field belongs to ids[i]."""

    ids: list[str]
    embeddings: np.ndarray  # float32, shape (len(ids), dimensions)
    metadatas: list[dict[str, Any]]
    documents: list[str]

    def __post_init__(self) -> None:
        embeddings = np.asarray(self.embeddings, dtype=np.float32)
        if embeddings.ndim != 2 and len(self.ids) == 0:
            embeddings = embeddings.reshape(0, 0)
        object.__setattr__(self, "embeddings", embeddings)
        n = len(self.ids)
        if embeddings.ndim != 2 or embeddings.shape[0] != n:
            raise InvalidInputError(f"page of {n} ids has embeddings of shape {embeddings.shape}")
        if len(self.metadatas) != n or len(self.documents) != n:
            raise InvalidInputError(f"page of {n} ids has {len(self.metadatas)} metadatas and "
                                    f"{len(self.documents)} documents")

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: list[int]) -> RecordPage:
        """The records at `rows`, in that order."""
        return RecordPage(ids=[self.ids[r] for r in rows], embeddings=self.embeddings[rows],
                          metadatas=[self.metadatas[r] for r in rows],
                          documents=[self.documents[r] for r in rows])

    @property
    def dimensions(self) -> int:
        return int(self.embeddings.shape[1])

    def validate(self, dimensions: int, where: str) -> None:
        """Raise naming the first bad record: empty id, wrong width, or non-finite values."""
        for index, item_id in enumerate(self.ids):
            if not isinstance(item_id, str) or not item_id:
                raise InvalidInputError(f"{where}: record #{index} has an empty or non-string id {item_id!r}")
        if len(self) and self.dimensions != dimensions:
            raise DimensionMismatchError(f"{where}: record {self.ids[0]!r} has {self.dimensions} "
                                         f"dimensions, expected {dimensions}")
        finite = np.isfinite(self.embeddings).all(axis=1) if len(self) else np.ones(0, bool)
        if not finite.all():
            bad = self.ids[int(np.argmin(finite))]
            raise InvalidInputError(f"{where}: record {bad!r} has a NaN or infinite embedding value")
        for item_id, doc, metadata in zip(self.ids, self.documents, self.metadatas, strict=True):
            if not isinstance(doc, str):
                raise InvalidInputError(f"{where}: record {item_id!r} has a non-string document")
            if not isinstance(metadata, dict):
                raise InvalidInputError(f"{where}: record {item_id!r} metadata is not a mapping")
            for name, value in metadata.items():
                problem = "its key is not a string" if not isinstance(name, str) else \
                    check_metadata_value(value)
                if problem is not None:
                    raise InvalidInputError(f"{where}: record {item_id!r} metadata {name!r} {problem}")


class ArchivePart(BaseModel):
    """A separately stored part of a snapshot: its key, the sha256 and size of its bytes (checked on
    every download), and the store's etag at upload (None: not recorded, as archive_etag)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)  # bytes
    etag: str | None = None


class SnapshotManifest(BaseModel):
    """`{prefix}manifest.json`. Written after the archive, so its presence means the archive is complete.

    A split manifest (`vectors` set) stores `archive_key` as `records_key`: every reader from before
    the split requires `archive_key`, so it refuses a split segment ("not a snapshot manifest ...
    archive_key Field required") instead of opening its records without their vectors, which Chroma
    accepts and then answers queries nearly empty (review finding 2). No version field could do
    this: those readers ignore unknown fields. Upgrade readers before writers all the same."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str  # the snapshot prefix
    archive_key: str = Field(validation_alias=AliasChoices("archive_key", "records_key"))
    collection: str
    count: int = Field(ge=0)
    dimensions: int = Field(ge=0)  # 0 only for an empty snapshot of unknown width
    model: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    archive_bytes: int = Field(ge=0)
    profile: Profile
    created_at: float  # epoch seconds
    sources: list[str] = Field(default_factory=list)
    # Published versions only: what this publish merged in, so a re-run can report it unchanged.
    added: int | None = None
    added_ids_digest: str | None = None
    # Deltas and intermediates (revisions.py): ids this snapshot deletes, and the entries its merge
    # dropped because a newer one for the same id won (count in = count + deletions + superseded).
    deletions: int = Field(default=0, ge=0)
    superseded: int = Field(default=0, ge=0)
    # Issue 23: metadata updates this (flat) snapshot carries (snapshots/metadata_update.py)
    metadata_updates: int = Field(default=0, ge=0)
    # The store's own checksum of the archive as uploaded (S3's ETag, the local store's md5), so a
    # writer can tell the stored bytes are still these without downloading them. None: not recorded
    # (written before it existed, or another writer uploaded the same bytes first).
    archive_etag: str | None = None
    # Segments written since issue 21 keep their vectors apart from their records: the archive above
    # then holds the records (chroma.sqlite3) and this part the vector index (Chroma's HNSW segment
    # folder), so a rewrite that changes only records uploads only them. None: one archive holds all.
    vectors: ArchivePart | None = None

    @model_serializer(mode="wrap")
    def _records_key_when_split(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        if self.vectors is not None and "archive_key" in dumped:
            dumped["records_key"] = dumped.pop("archive_key")
        return dumped


SEGMENT_ID_LENGTH = 24


def segment_identity(records_sha256: str, vectors_sha256: str | None) -> str:
    """A segment's id: the last part of its prefix, and its cache directory's name. For a segment in one
    archive, the start of that archive's sha256; for one in two parts (issue 21), of both parts' sha256:
    two builds of the same records can hold other vector files (a rerun's HNSW index is not
    byte-identical to the crashed run's), and each build is a whole segment of its own, so a rerun
    commits its own and never meets the crashed run's at one prefix."""
    if vectors_sha256 is None:
        return records_sha256[:SEGMENT_ID_LENGTH]
    both = hashlib.sha256(f"{records_sha256}:{vectors_sha256}".encode("ascii")).hexdigest()
    return both[:SEGMENT_ID_LENGTH]


class SegmentRef(BaseModel):
    """One segment of a published version: a "quality" snapshot (archive + manifest) at `key`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str
    count: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # of its archive, so also its identity
    # Its id index (id_index.py): key, sha256 and size of the SQLite file; None for segments published
    # before indexes existed.
    ids_key: str | None = None
    ids_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    ids_bytes: int | None = Field(default=None, ge=0)
    # The sha256 of its vectors part (SnapshotManifest.vectors), so the version names both parts; None
    # for a segment in one archive (written before issue 21's split).
    vectors_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @property
    def segment_id(self) -> str:
        return segment_identity(self.sha256, self.vectors_sha256)


class VersionManifest(BaseModel):
    """`{db}/snapshot/versions/{version}/manifest.json`: the segments a published version is made of.
    No id is in two segments, so the version's records are the union of theirs."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str  # the version prefix
    database: str
    count: int = Field(ge=0)
    dimensions: int = Field(ge=0)
    model: str
    segments: list[SegmentRef]
    created_at: float
    sources: list[str] = Field(default_factory=list)
    # What the publish that made this version merged in, so a re-run can report it unchanged.
    added: int | None = None
    added_ids_digest: str | None = None
    deleted: int = 0  # published ids this publish removed (deletions and nothing else)
    replaced: int = 0  # published ids this publish gave a newer record (same id)
    received: int | None = None  # records + deletions read from the sources
    # Deletions applied so far ({id: revision} at this key; revisions.py), so late old records of a
    # deleted id stay out. None: no tombstones.
    tombstones_key: str | None = None
    tombstones: int = 0
    metadata_updated: int = 0  # issue 23: published records whose living metadata this publish updated

    @model_validator(mode="after")
    def _counts_add_up(self) -> VersionManifest:
        total = sum(segment.count for segment in self.segments)
        if total != self.count:
            raise ValueError(f"segments hold {total} records, the version says {self.count}")
        return self


@dataclass(frozen=True)
class PublishOutcome:
    version: SnapshotVersion
    total_embeddings: int  # records in the published snapshot
    added_embeddings: int  # unique records merged in from the sources of this publish
    published_ids_digest: str  # sha256 of the sorted, newline-joined ids merged in from the sources
    deleted_embeddings: int = 0  # published ids removed by the sources' deletions
    replaced_embeddings: int = 0  # published ids whose record a newer one replaced
    superseded: int = 0  # source entries that lost to a newer entry for the same id (not applied)
    received: int | None = None  # records + deletions read from the sources (None: not recorded)
    # After the pointer moved, what failed without failing the publish (one line each; None: nothing):
    mirror_error: str | None = None  # latest/pointer.json or the plain mirror not refreshed
    prune_error: str | None = None  # old versions and cached segments not pruned (next publish retries)
    metadata_updated: int = 0  # published records given newer living metadata (issue 23)
