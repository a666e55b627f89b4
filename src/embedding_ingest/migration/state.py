"""The migration record of a kind and what follows from it (issue 19)."""

from __future__ import annotations

import hashlib
import time

from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import ItemKind, MigrationRecord, MigrationState

UNDER_WAY = frozenset({MigrationState.REQUEUING, MigrationState.BUILDING})


def kind_of_database(database: str) -> ItemKind | None:
    return next((kind for kind in ItemKind if kind.database == database), None)


def under_way(ledger: Ledger, kind: ItemKind) -> MigrationRecord | None:
    """The kind's migration if one is requeueing or building, else None."""
    record = ledger.get_migration(kind)
    return record if record is not None and record.state in UNDER_WAY else None


def building(ledger: Ledger, database: str) -> MigrationRecord | None:
    """The migration whose staging pointer publishes go to, if any (state BUILDING)."""
    kind = kind_of_database(database)
    record = ledger.get_migration(kind) if kind is not None else None
    return record if record is not None and record.state is MigrationState.BUILDING else None


def staging_pointer(kind: ItemKind, model: str, dimensions: int, started_at: float) -> str:
    """A fresh pointer per migration ("lines+1a2b3c4d"): a new migration never builds on an old one."""
    digest = hashlib.blake2b(f"{model}\x1f{dimensions}\x1f{started_at!r}".encode(), digest_size=4).hexdigest()
    return f"{kind.database}+{digest}"


def moved_on(record: MigrationRecord, **changes: object) -> MigrationRecord:
    return record.model_copy(update={**changes, "updated_at": time.time()})
