"""Errors of the snapshot lifecycle. Store-level failures (missing or corrupt objects, lost leases,
pointer conflicts) are raised as the stores package's own errors; these cover what only snapshots know."""

from __future__ import annotations

from embedding_ingest.exceptions import InvalidInputError, TerminalError, TransientError


class SnapshotCountMismatchError(TerminalError):
    """Unique ids that went into a build differ from the records that came out (lesson 4)."""

    def __init__(self, what: str, expected: int, actual: int) -> None:
        super().__init__(f"{what}: expected {expected} unique records, snapshot holds {actual}")
        self.expected = expected
        self.actual = actual


class ModelMismatchError(TerminalError):
    """Vectors of different embedding models (or dimensions) must never share a collection (lesson 13)."""


class DimensionMismatchError(InvalidInputError):
    """A record's embedding has the wrong number of dimensions for its snapshot."""


class SnapshotConflictError(TerminalError):
    """A prefix already holds a different snapshot than the one asked for (a reused key)."""


class NothingPublishedError(TerminalError):
    def __init__(self, database: str) -> None:
        super().__init__(f"no snapshot has been published for database {database!r}")
        self.database = database


class VersionNotFoundError(TerminalError):
    def __init__(self, database: str, version: str) -> None:
        super().__init__(f"snapshot version {version!r} of {database!r} is not among the kept versions")
        self.database = database
        self.version = version


class SnapshotBusyError(TransientError):
    """A persist directory still has open file handles; packing it now could corrupt it (lesson 6)."""


class ChromaFormatError(TerminalError):
    """A Chroma persist directory the SQLite reader (snapshots/chroma_sqlite.py) cannot answer for: another
    chromadb or schema migration level than it was written for, or the collection or its metadata
    segment missing. Retrying cannot help; the message names what was found and what is supported."""
