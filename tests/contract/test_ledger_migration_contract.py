"""Issue 19's ledger parts, the same in every adapter: a staging pointer beside a database's own (same
lock, separate history, dropped whole after a switch) and the migration record's conditional states."""

from __future__ import annotations

import pytest
from test_ledger_coordination_contract import version

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.exceptions import PointerConflictError, StaleFencingTokenError
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import ItemKind, MigrationRecord, MigrationState

STAGING = "lines+m1"


def test_a_staging_pointer_moves_apart_from_the_live_one_under_the_same_lock(ledger: Ledger) -> None:
    lease = ledger.acquire_lock("lines", "exec-A", 30)
    live = version("v1", lease, at=100.0)
    ledger.publish_version(live, expected_current=None, lease=lease)
    staged = version("s1", lease, at=200.0)
    ledger.publish_version(staged, expected_current=None, lease=lease, pointer=STAGING)
    ledger.publish_version(version("s2", lease, at=300.0), expected_current="s1", lease=lease,
                           pointer=STAGING)

    assert ledger.get_published("lines") == live  # queries' pointer untouched
    assert ledger.get_published("lines", pointer=STAGING).version == "s2"
    assert ledger.get_published("lines", pointer=STAGING).database == "lines"  # same collections
    assert [v.version for v in ledger.list_versions("lines")] == ["v1"]
    assert [v.version for v in ledger.list_versions("lines", pointer=STAGING)] == ["s2", "s1"]
    with pytest.raises(PointerConflictError):
        ledger.publish_version(version("s3", lease, at=400.0), expected_current="s1", lease=lease,
                               pointer=STAGING)
    ledger.release_lock(lease)
    with pytest.raises(StaleFencingTokenError):  # the database's lock fences the staging pointer too
        ledger.publish_version(version("s4", lease, at=500.0), expected_current="s2", lease=lease,
                               pointer=STAGING)

    ledger.forget_pointer(STAGING)
    assert ledger.get_published("lines", pointer=STAGING) is None
    assert ledger.list_versions("lines", pointer=STAGING) == []
    assert ledger.get_published("lines") == live
    with pytest.raises(InvalidInputError):
        ledger.forget_pointer("lines")


def record(state: MigrationState, **extra) -> MigrationRecord:
    return MigrationRecord(kind=ItemKind.LINE, state=state, from_model="a", from_dimensions=16,
                           to_model="b", to_dimensions=8, staging=STAGING, started_at=1.0, updated_at=1.0,
                           **extra)


def test_migration_states_change_only_from_the_expected_one(ledger: Ledger) -> None:
    assert ledger.get_migration(ItemKind.LINE) is None
    ledger.save_migration(record(MigrationState.REQUEUING), expected_state=None)
    with pytest.raises(PointerConflictError):  # a second start while one runs
        ledger.save_migration(record(MigrationState.REQUEUING), expected_state=None)
    ledger.save_migration(record(MigrationState.BUILDING, requeued=5),
                          expected_state=MigrationState.REQUEUING)
    with pytest.raises(PointerConflictError):
        ledger.save_migration(record(MigrationState.SWITCHED), expected_state=MigrationState.REQUEUING)
    ledger.save_migration(record(MigrationState.SWITCHED, before_switch="v1", switched_version="s2"),
                          expected_state=MigrationState.BUILDING)
    got = ledger.get_migration(ItemKind.LINE)
    assert (got.state, got.requeued, got.before_switch, got.switched_version) == (
        MigrationState.SWITCHED, 0, "v1", "s2")
    assert ledger.get_migration(ItemKind.WORD) is None
    ledger.save_migration(record(MigrationState.REQUEUING), expected_state=None)  # an ended one: anew
