"""DynamoLedger: the Ledger port on one DynamoDB table (layout in dynamo_schema).

Each concern lives in its own module; this class only puts them together. GSI reads are eventually
consistent on real DynamoDB (moto answers at once): listing by status may miss a change made a
moment ago, which the workflows tolerate because every step re-checks with conditional writes.
"""

from __future__ import annotations

from typing import Any

from embedding_ingest.stores.dynamo_base import DynamoBase
from embedding_ingest.stores.dynamo_batches import DynamoBatches
from embedding_ingest.stores.dynamo_executions import DynamoExecutions
from embedding_ingest.stores.dynamo_items import DynamoItems
from embedding_ingest.stores.dynamo_locks import DynamoLocks
from embedding_ingest.stores.dynamo_migrations import DynamoMigrations
from embedding_ingest.stores.dynamo_receipts import DynamoReceipts


class DynamoLedger(DynamoItems, DynamoReceipts, DynamoBatches, DynamoLocks, DynamoMigrations,
                   DynamoExecutions):
    """`DynamoLedger(boto3.client("dynamodb"), "table-name")`. Picklable: the client is rebuilt
    from its endpoint and region in the receiving process."""

    def __init__(self, client: Any, table: str) -> None:
        DynamoBase.__init__(self, client, table)
