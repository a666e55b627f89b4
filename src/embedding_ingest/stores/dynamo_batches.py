"""Batch summaries in DynamoDB: PK=BATCH#{id}, SK=STATUS, listed through GSI1 (status, then age)."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Collection, Iterator
from typing import Any

from pydantic import ValidationError

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.dynamo_base import DynamoBase, record_from
from embedding_ingest.stores.dynamo_items import summary_attributes
from embedding_ingest.stores.dynamo_schema import batch_key, batch_status_partition, batch_type_prefix
from embedding_ingest.stores.exceptions import BatchNotFoundError
from embedding_ingest.stores.records import BatchStatus, BatchSummary, BatchType

_CHANGEABLE = frozenset(BatchSummary.model_fields) - {"batch_id"}


def _age(summary: BatchSummary) -> tuple[str, str]:
    # the same fixed-width text GSI1SK sorts by, so merged partitions stay in one order
    return f"{summary.submitted_at:020.6f}", summary.batch_id


class DynamoBatches(DynamoBase):
    def get_batch(self, batch_id: str) -> BatchSummary | None:
        raw = self._get(batch_key(batch_id))
        return record_from(BatchSummary, raw) if raw is not None else None

    def list_batches(self, *, statuses: Collection[BatchStatus] | None = None,
                     batch_type: BatchType | None = None, limit: int | None = None
                     ) -> list[BatchSummary]:
        if limit is not None and limit <= 0:
            return []
        wanted_statuses = [BatchStatus(s) for s in statuses] if statuses is not None else list(BatchStatus)
        types = [BatchType(batch_type)] if batch_type is not None else list(BatchType)
        partitions = [self._oldest_first(status, kind, limit)
                      for status in dict.fromkeys(wanted_statuses) for kind in types]
        return list(itertools.islice(heapq.merge(*partitions, key=_age), limit))

    def _oldest_first(self, status: BatchStatus, batch_type: BatchType,
                      limit: int | None) -> Iterator[BatchSummary]:
        raws = self._query(
            IndexName="GSI1", KeyConditionExpression="GSI1PK = :p AND begins_with(GSI1SK, :t)",
            ExpressionAttributeValues={":p": {"S": batch_status_partition(status)},
                                       ":t": {"S": batch_type_prefix(batch_type)}},
            ScanIndexForward=True, page_size=limit)
        return (record_from(BatchSummary, raw) for raw in raws)

    def update_batch(self, batch_id: str, **changes: Any) -> BatchSummary:
        unknown = sorted(set(changes) - _CHANGEABLE)
        if unknown:
            raise InvalidInputError(f"batch {batch_id}: cannot change unknown or fixed fields {unknown}")
        current = self.get_batch(batch_id)
        if current is None:
            raise BatchNotFoundError(batch_id)
        changes["updated_at"] = time.time()  # the ledger stamps it, as every adapter does
        try:
            merged = BatchSummary.model_validate({**current.model_dump(), **changes})
        except ValidationError as exc:
            raise InvalidInputError(f"batch {batch_id}: invalid change {changes}: {exc}") from exc

        # Write only the changed fields, so concurrent updates of different fields both survive.
        new_attributes = summary_attributes(merged)
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets: list[str] = []
        removes: list[str] = []
        for position, field in enumerate(sorted(changes)):
            names[f"#f{position}"] = field
            if field in new_attributes:
                values[f":v{position}"] = new_attributes[field]
                sets.append(f"#f{position} = :v{position}")
            else:
                removes.append(f"#f{position}")
        for index_attribute in ("GSI1PK", "GSI1SK"):
            values[f":{index_attribute}"] = new_attributes[index_attribute]
            sets.append(f"{index_attribute} = :{index_attribute}")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        response = self._conditional(
            "update_item", Key=batch_key(batch_id), UpdateExpression=expression,
            ConditionExpression="attribute_exists(PK)", ExpressionAttributeNames=names,
            ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
        if response is None:
            raise BatchNotFoundError(batch_id)
        return record_from(BatchSummary, response["Attributes"])

