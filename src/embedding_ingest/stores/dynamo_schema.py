"""The single DynamoDB table behind DynamoLedger: its definition (shared by tests, local setup and the
CloudFormation template) and the key shapes of every entity in it.

| entity           | PK                  | SK                                  | indexes              |
|------------------|---------------------|-------------------------------------|----------------------|
| batch summary    | BATCH#{batch_id}    | STATUS                              | GSI1 status, age     |
| line / word      | IMAGE#{image_id}    | RECEIPT#{n}#LINE#{l}[#WORD#{w}]     | GSI2 embedding status|
|                  |                     | (numbers :05d)                      | GSI3 batch members   |
|                  |                     |                                     | GSI1 metadata pending|
| lock lease       | LOCK#{name}         | LEASE (has the TTL attribute)       |                      |
| fencing counter  | LOCK#{name}         | FENCE (no TTL: never resets)        |                      |
| snapshot pointer | SNAPSHOT#{database} | POINTER                             |                      |
| snapshot version | SNAPSHOT#{database} | VERSION#{version}                   |                      |
| model migration  | MIGRATION#{kind}    | MIGRATION                           |                      |
| execution        | EXECUTION#{arn}     | EXECUTION                           | GSI1 newest, GSI2 name|
| history event    | EXECUTION#{arn}     | EVENT#{id:010d}                     |                      |

Item ids in the receipts' canonical form (IMAGE#..#RECEIPT#..#LINE#..[#WORD#..]) split into the
original system's PK/SK; any other id is stored under PK=ITEM#{item_id}, SK=ITEM, so the key can
always be computed from the id alone (one BatchGetItem per 100 ids, no lookup index).

Batch summaries sort oldest first inside GSI1 because GSI1SK carries a fixed-width submitted_at:
BATCH_TYPE#{type}#SUBMITTED#{epoch:020.6f}#BATCH_ID#{id}. Listing several statuses merges the
already-ordered partitions, so a `limit` never needs to read the whole backlog.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

from embedding_ingest.stores.records import (
    BatchStatus,
    BatchType,
    EmbeddingStatus,
    ItemKind,
)

TTL_ATTRIBUTE = "ttl"
# A lock waiter's record is swept this long after its last write (a lease itself never expires by TTL:
# a slow holder's lease must not vanish under it).
LOCK_WAIT_TTL_SECONDS = 24 * 3600

_INDEXES = {"GSI1": ("GSI1PK", "GSI1SK"), "GSI2": ("GSI2PK", "GSI2SK"), "GSI3": ("GSI3PK", "GSI3SK")}


def table_definition(name: str) -> dict[str, Any]:
    """Keyword arguments for `create_table` (and the shape of the CloudFormation resource)."""
    key_attributes = ["PK", "SK"] + [attr for pair in _INDEXES.values() for attr in pair]
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": attr, "AttributeType": "S"} for attr in key_attributes],
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"},
                      {"AttributeName": "SK", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
            {"IndexName": index,
             "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"},
                           {"AttributeName": sk, "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "ALL"}}
            for index, (pk, sk) in _INDEXES.items()
        ],
    }


def ensure_table(client: Any, name: str) -> None:
    """Create the table (and its TTL setting) if absent and wait until it is usable. For local and
    dev setups; production tables come from the CloudFormation template."""
    try:
        client.create_table(**table_definition(name))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": TTL_ATTRIBUTE})


# -- key shapes --------------------------------------------------------------------------------
_CANONICAL_ITEM_ID = re.compile(
    r"IMAGE#(?P<image>[^#]+)#(?P<rest>RECEIPT#\d{5}#LINE#\d{5}(?:#WORD#\d{5})?)")

Key = dict[str, dict[str, str]]


def _key(pk: str, sk: str) -> Key:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def item_key(item_id: str) -> Key:
    match = _CANONICAL_ITEM_ID.fullmatch(item_id)
    if match:
        return _key(f"IMAGE#{match['image']}", match["rest"])
    return _key(f"ITEM#{item_id}", "ITEM")


def is_canonical_item_id(item_id: str) -> bool:
    return _CANONICAL_ITEM_ID.fullmatch(item_id) is not None


def embedding_status_partition(kind: ItemKind | str, status: EmbeddingStatus | str) -> str:
    return f"EMBEDDING#{ItemKind(kind).value}#{EmbeddingStatus(status).value}"


def metadata_pending_partition(kind: ItemKind | str) -> str:
    """GSI1 partition of items whose metadata update waits to be queued (issue 23; sparse: the
    attributes exist only while metadata_version > metadata_queued)."""
    return f"METADATA_PENDING#{ItemKind(kind).value}"


def batch_items_partition(batch_id: str) -> str:
    return f"BATCH#{batch_id}"


def batch_key(batch_id: str) -> Key:
    return _key(f"BATCH#{batch_id}", "STATUS")


def batch_status_partition(status: BatchStatus | str) -> str:
    return f"STATUS#{BatchStatus(status).value}"


def batch_type_prefix(batch_type: BatchType | str) -> str:
    return f"BATCH_TYPE#{BatchType(batch_type).value}#"


def batch_sort_key(batch_type: BatchType | str, submitted_at: float, batch_id: str) -> str:
    return f"{batch_type_prefix(batch_type)}SUBMITTED#{submitted_at:020.6f}#BATCH_ID#{batch_id}"


def lease_key(name: str) -> Key:
    return _key(f"LOCK#{name}", "LEASE")


def fence_key(name: str) -> Key:
    return _key(f"LOCK#{name}", "FENCE")


def lock_wait_key(name: str, waiter: str) -> Key:
    return _key(f"LOCK#{name}", f"WAIT#{waiter}")


def pointer_key(database: str) -> Key:
    return _key(f"SNAPSHOT#{database}", "POINTER")


def version_key(database: str, version: str) -> Key:
    return _key(f"SNAPSHOT#{database}", f"VERSION#{version}")


def migration_key(kind: str) -> Key:
    return _key(f"MIGRATION#{kind}", "MIGRATION")


def execution_key(arn: str) -> Key:
    return _key(f"EXECUTION#{arn}", "EXECUTION")


EXECUTIONS_PARTITION = "EXECUTIONS"


def execution_sort_key(start_date: float, arn: str) -> str:
    return f"START#{start_date:020.6f}#{arn}"


def execution_name_partition(name: str) -> str:
    return f"EXECUTION_NAME#{name}"


def event_key(arn: str, event_id: int) -> Key:
    return _key(f"EXECUTION#{arn}", f"EVENT#{event_id:010d}")
