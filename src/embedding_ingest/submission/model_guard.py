"""Submit embeds only with the model and width the kind is published with, or the one a migration
under way builds with (issue 19): vectors of another would be paid for, then refused at publish."""

from __future__ import annotations

from embedding_ingest.snapshots.version_ids import short_version_of
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import ItemKind, MigrationState
from embedding_ingest.submission.exceptions import ModelChangeError


def check_submit_model(kind: ItemKind, ledger: Ledger, model: str, dimensions: int) -> None:
    """Raises ModelChangeError (one line: both models and what to run) when `model`/`dimensions`
    differ from what the kind must be embedded with now."""
    migration = ledger.get_migration(kind)
    configured = f"{model}/{dimensions}"
    if migration is not None and migration.state is MigrationState.REQUEUING:
        target = f"{migration.to_model}/{migration.to_dimensions}"
        raise ModelChangeError(f"{kind.value}: the migration to {target} did not finish starting "
                               "(its items are being queued again)",
                               try_=f"embedding-ingest migrate {kind.value}")
    if migration is not None and migration.state is MigrationState.BUILDING:
        target = f"{migration.to_model}/{migration.to_dimensions}"
        if configured != target:
            raise ModelChangeError(
                f"{kind.value}: configured {configured} but the migration under way embeds with {target}; "
                f"set EMBEDDING_MODEL={migration.to_model} EMBEDDING_DIMENSIONS={migration.to_dimensions}",
                try_=f"EMBEDDING_MODEL={migration.to_model} EMBEDDING_DIMENSIONS={migration.to_dimensions} "
                     f"embedding-ingest submit {kind.value}")
        return
    live = ledger.get_published(kind.database)
    if live is None or configured == f"{live.model}/{live.dimensions}":
        return
    shown = short_version_of(ledger, kind.database, live.version)  # as `snapshots list` shows it
    raise ModelChangeError(
        f"{kind.value}: configured {configured} but published {kind.database} version {shown} "
        f"is {live.model}/{live.dimensions} (migrate to the new one, or set EMBEDDING_MODEL and "
        "EMBEDDING_DIMENSIONS back)", try_=f"embedding-ingest migrate {kind.value} --dry-run")
