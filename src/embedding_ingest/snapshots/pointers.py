"""A database's pointers while a model migration (issue 19; embedding_ingest/migration/) is under way:
the live one (queries) and the staging one (the new model's version being built). Both share the
database's collections and segments, so what one prunes must not be what the other (or a rollback)
still uses. Read from the migration record in the ledger."""

from __future__ import annotations

from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import (
    ENDED_MIGRATION_STATES,
    ItemKind,
    MigrationRecord,
    MigrationState,
    SnapshotVersion,
)


def _migration_of(ledger: Ledger, database: str) -> MigrationRecord | None:
    kind = next((kind for kind in ItemKind if kind.database == database), None)
    return ledger.get_migration(kind) if kind is not None else None


def other_pointers_versions(ledger: Ledger, database: str, pointer: str | None) -> list[SnapshotVersion]:
    """Versions of the database's other pointer while a migration (issue 19) is under way: both
    pointers share the database's segments, so pruning one must keep what the other uses."""
    migration = _migration_of(ledger, database)
    if migration is None or migration.state in ENDED_MIGRATION_STATES:
        return []
    other = None if pointer is not None else migration.staging
    return ledger.list_versions(database, pointer=other)


def pinned_versions(ledger: Ledger, database: str) -> set[str]:
    """Live versions a migration still needs: the one a switch replaced, while a rollback may return
    to it."""
    migration = _migration_of(ledger, database)
    if migration is None or migration.state is not MigrationState.SWITCHED or not migration.before_switch:
        return set()
    return {migration.before_switch}
