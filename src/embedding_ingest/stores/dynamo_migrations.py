"""Model migration records in DynamoDB (issue 19): one item per kind, PK=MIGRATION#{kind}, SK=MIGRATION,
the record's fields as attributes; every change is a PutItem conditioned on the state before it."""

from __future__ import annotations

from embedding_ingest.stores.dynamo_base import DynamoBase, record_attributes, record_from
from embedding_ingest.stores.dynamo_schema import migration_key
from embedding_ingest.stores.exceptions import PointerConflictError
from embedding_ingest.stores.records import (
    ENDED_MIGRATION_STATES,
    ItemKind,
    MigrationRecord,
    MigrationState,
)


class DynamoMigrations(DynamoBase):
    def get_migration(self, kind: ItemKind) -> MigrationRecord | None:
        raw = self._get(migration_key(ItemKind(kind).value))
        return record_from(MigrationRecord, raw) if raw is not None else None

    def save_migration(self, record: MigrationRecord, *, expected_state: MigrationState | None) -> None:
        if expected_state is None:
            ended = sorted(state.value for state in ENDED_MIGRATION_STATES)
            condition = "attribute_not_exists(PK) OR #state IN (:e0, :e1)"
            values = {":e0": {"S": ended[0]}, ":e1": {"S": ended[1]}}
        else:
            condition = "#state = :expected"
            values = {":expected": {"S": MigrationState(expected_state).value}}
        written = self._conditional(
            "put_item", Item={**migration_key(record.kind.value), **record_attributes(record)},
            ConditionExpression=condition, ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=values)
        if written is None:
            current = self.get_migration(record.kind)
            raise PointerConflictError(f"migration of {record.kind.value} is "
                                       f"{current.state if current else None}, expected {expected_state}: "
                                       "someone else moved it on")
