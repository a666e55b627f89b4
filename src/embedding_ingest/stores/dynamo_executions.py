"""Local-engine executions and their history in DynamoDB: PK=EXECUTION#{arn} holds the execution
(SK=EXECUTION) and its events (SK=EVENT#{id:010d}, so a query returns them oldest first). GSI1 lists
executions newest first; GSI2 finds one by name."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from embedding_ingest.stores.dynamo_base import Attributes, DynamoBase, record_attributes, record_from
from embedding_ingest.stores.dynamo_schema import (
    EXECUTIONS_PARTITION,
    event_key,
    execution_key,
    execution_name_partition,
    execution_sort_key,
)
from embedding_ingest.stores.exceptions import ExecutionAlreadyExistsError
from embedding_ingest.stores.records import ExecutionRecord, ExecutionStatus, HistoryEvent


def _execution_attributes(record: ExecutionRecord) -> Attributes:
    return {**record_attributes(record), **execution_key(record.execution_arn),
            "GSI1PK": {"S": EXECUTIONS_PARTITION},
            "GSI1SK": {"S": execution_sort_key(record.start_date, record.execution_arn)},
            "GSI2PK": {"S": execution_name_partition(record.name)},
            "GSI2SK": {"S": record.execution_arn}}


class DynamoExecutions(DynamoBase):
    def create_execution(self, record: ExecutionRecord) -> None:
        # This call's own token: the SDK's repeat of the same request (its reply lost) carries it and
        # finds its own write, while any other start of this execution is refused.
        token = uuid.uuid4().hex
        item = {**_execution_attributes(record), "put_token": {"S": token}}
        created = self._conditional("put_item", Item=item,
                                    ConditionExpression="attribute_not_exists(PK) OR put_token = :token",
                                    ExpressionAttributeValues={":token": {"S": token}})
        if created is None:
            raise ExecutionAlreadyExistsError(f"execution already exists: {record.execution_arn}")

    def update_execution(self, record: ExecutionRecord) -> None:
        self._call("put_item", Item=_execution_attributes(record))

    def get_execution(self, name_or_arn: str) -> ExecutionRecord | None:
        raw = self._get(execution_key(name_or_arn))
        if raw is not None:
            return record_from(ExecutionRecord, raw)
        by_name = [record_from(ExecutionRecord, found) for found in self._query(
            IndexName="GSI2", KeyConditionExpression="GSI2PK = :p",
            ExpressionAttributeValues={":p": {"S": execution_name_partition(name_or_arn)}})]
        # names repeat across state machines; the newest run is the one meant
        return max(by_name, key=lambda r: (r.start_date, r.execution_arn), default=None)

    def list_executions(self, *, workflow: str | None = None, status: ExecutionStatus | None = None,
                        limit: int | None = None) -> list[ExecutionRecord]:
        if limit is not None and limit <= 0:
            return []
        filters, values = [], {":p": {"S": EXECUTIONS_PARTITION}}
        names = {}
        if workflow is not None:
            filters.append("workflow = :w")
            values[":w"] = {"S": workflow}
        if status is not None:
            filters.append("#status = :s")
            names["#status"] = "status"
            values[":s"] = {"S": ExecutionStatus(status).value}
        query = {"IndexName": "GSI1", "KeyConditionExpression": "GSI1PK = :p",
                 "ExpressionAttributeValues": values, "ScanIndexForward": False}
        if filters:
            query["FilterExpression"] = " AND ".join(filters)
        if names:
            query["ExpressionAttributeNames"] = names
        found: list[ExecutionRecord] = []
        for raw in self._query(**query):
            found.append(record_from(ExecutionRecord, raw))
            if limit is not None and len(found) >= limit:
                break
        return found

    def append_events(self, execution_arn: str, events: Sequence[HistoryEvent]) -> None:
        # Keyed by event id: appending the same events again rewrites them, never duplicates.
        unique = {event.id: event for event in events}
        self._batch_put([{**record_attributes(event), **event_key(execution_arn, event.id)}
                         for event in unique.values()])

    def get_events(self, execution_arn: str) -> list[HistoryEvent]:
        raws = self._query(KeyConditionExpression="PK = :p AND begins_with(SK, :e)",
                           ExpressionAttributeValues={":p": execution_key(execution_arn)["PK"],
                                                      ":e": {"S": "EVENT#"}}, ConsistentRead=True)
        return [record_from(HistoryEvent, raw) for raw in raws]
