"""Planning, starting and resuming a model migration (`embedding-ingest migrate KIND`).

Start: refuse while batches of the kind are still running (their vectors are of the old model), then
record REQUEUING, send every item back to NONE for re-embedding (SUCCESS ones, and FAILED ones too:
they get a fresh chance with the new model; counters reset), and record BUILDING. Nothing is submitted
while the record says REQUEUING (submission.model_guard), so requeueing in chunks is safe to rerun.
From BUILDING on, submit embeds with the target and the workflows publish to the staging pointer; the
switch happens in the FinalMerge that publishes the last item there (migration/switch.py), or on a rerun
of `migrate`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from embedding_ingest.config import Settings
from embedding_ingest.migration.exceptions import MigrationRefusedError
from embedding_ingest.migration.state import UNDER_WAY, moved_on, staging_pointer
from embedding_ingest.migration.switch import active_embed_batches
from embedding_ingest.providers.models import embedding_dimensions, embedding_model, resolve_dimensions
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import (
    EmbeddingStatus,
    ItemKind,
    MigrationRecord,
    MigrationState,
)

REQUEUE_CHUNK = 1_000
_TO_EMBED = (EmbeddingStatus.NONE, EmbeddingStatus.PENDING, EmbeddingStatus.SUCCESS, EmbeddingStatus.FAILED)


@dataclass
class MigrationPlan:
    """What a migration of `kind` to `to_model`/`to_dimensions` re-embeds: every item not being
    deleted (tokens as counted at import, cl100k_base; the caller prices them: submission.budgets)."""

    kind: ItemKind
    from_model: str | None
    from_dimensions: int | None
    to_model: str
    to_dimensions: int
    items: int
    tokens: int
    state: str | None  # the migration record's state, if there is one


def target_of(settings: Settings, model: str | None, dimensions: int | None) -> tuple[str, int]:
    """(model, width) to migrate to: --model/--dimensions, else the configured ones. A model given
    without a width gets its native one (EMBEDDING_DIMENSIONS was the old model's). Raises
    ConfigurationError for a width the model cannot make (providers.models)."""
    if model is None:
        model = embedding_model(settings)
        if dimensions is None:
            return model, embedding_dimensions(settings, model)
    setting = "--dimensions" if dimensions is not None else "EMBEDDING_DIMENSIONS"
    return model, resolve_dimensions(model, dimensions, default=embedding_dimensions(settings),
                                     setting=setting)


def plan_migration(ledger: Ledger, kind: ItemKind, target: tuple[str, int]) -> MigrationPlan:
    live = ledger.get_published(kind.database)
    record = ledger.get_migration(kind)
    tokens = items = 0
    for status in _TO_EMBED:
        for item in ledger.find_items(kind, status):
            items += 1
            tokens += item.tokens or 0
    return MigrationPlan(kind, live.model if live else None, live.dimensions if live else None, target[0],
                         target[1], items, tokens, record.state.value if record else None)


def start_or_resume(ledger: Ledger, kind: ItemKind, target: tuple[str, int]) -> MigrationRecord:
    """Start a migration of `kind` to `target`, or resume the one under way to it; returns its record
    (BUILDING, or SWITCHED if it already ended). Raises MigrationRefusedError with what to do."""
    record = ledger.get_migration(kind)
    if record is not None and record.state in UNDER_WAY:
        if (record.to_model, record.to_dimensions) != target:
            raise MigrationRefusedError(
                f"{kind.value}: a migration to {record.to_model}/{record.to_dimensions} is under way "
                "(finish it first)", try_=f"embedding-ingest migrate {kind.value} --model {record.to_model} "
                                          f"--dimensions {record.to_dimensions}")
    else:
        record = _begin(ledger, kind, target)
    if record.state is MigrationState.REQUEUING:
        record = _requeue(ledger, record)
    return record


def _begin(ledger: Ledger, kind: ItemKind, target: tuple[str, int]) -> MigrationRecord:
    live = ledger.get_published(kind.database)
    if live is None:
        raise MigrationRefusedError(f"{kind.value}: nothing is published yet (nothing to migrate: embed "
                                    "with the model you want from the start)",
                                    try_=f"EMBEDDING_MODEL={target[0]} EMBEDDING_DIMENSIONS={target[1]} "
                                         f"embedding-ingest submit {kind.value}")
    if (live.model, live.dimensions) == target:
        raise MigrationRefusedError(f"{kind.value}: already published with {live.model}/{live.dimensions}",
                                    try_="embedding-ingest status")
    if active := active_embed_batches(ledger, kind):
        raise MigrationRefusedError(
            f"{kind.value}: {active} {kind.value} batches of {live.model} are still active (they finish "
            "first)", try_=f"embedding-ingest start-execution {kind.value} --until-idle")
    now = time.time()
    record = MigrationRecord(kind=kind, state=MigrationState.REQUEUING, from_model=live.model,
                             from_dimensions=live.dimensions, to_model=target[0], to_dimensions=target[1],
                             staging=staging_pointer(kind, target[0], target[1], now), started_at=now,
                             updated_at=now, previous_version=live.version)
    ledger.save_migration(record, expected_state=None)
    return record


def _requeue(ledger: Ledger, record: MigrationRecord) -> MigrationRecord:
    reason = f"re-embed for the migration to {record.to_model}/{record.to_dimensions}"
    moved = 0
    for status in (EmbeddingStatus.SUCCESS, EmbeddingStatus.FAILED):
        while count := ledger.requeue_items(record.kind, status, reason, limit=REQUEUE_CHUNK):
            moved += count
    building = moved_on(record, state=MigrationState.BUILDING, requeued=record.requeued + moved)
    ledger.save_migration(building, expected_state=MigrationState.REQUEUING)
    return building
