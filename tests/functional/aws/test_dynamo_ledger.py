"""DynamoDB-specific behaviour of DynamoLedger beyond the shared contract: claims spanning several
transactions (rollback on a late conflict, completion after a crash), the table layout operators
and the CloudFormation template rely on, the TTL-proof fencing counter, and error translation."""

from __future__ import annotations

from typing import Any

import pytest
from aws_faults import answer_with, single_attempt_client

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.dynamo_ledger import DynamoLedger
from embedding_ingest.stores.dynamo_schema import ensure_table, table_definition
from embedding_ingest.stores.exceptions import ClaimConflictError, StoreUnavailableError
from embedding_ingest.stores.records import (
    BatchStatus,
    BatchSummary,
    BatchType,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
)

ITEMS_IN_BIG_CLAIM = 60  # summary + 24 items, 25 items, 11 items: three transactions


def line(n: int) -> EmbeddingItem:
    return EmbeddingItem(item_id=f"IMAGE#img-1#RECEIPT#00001#LINE#{n:05d}", kind=ItemKind.LINE,
                         image_id="img-1", receipt_number=1, line_id=n, text=f"line {n}",
                         embed_text=f"<ctx> line {n}", metadata={"merchant": "Shop", "y": 0.25})


def summary(batch_id: str, count: int = ITEMS_IN_BIG_CLAIM) -> BatchSummary:
    return BatchSummary(batch_id=batch_id, batch_type=BatchType.LINE_EMBEDDING, submitted_at=1_700_000_000.5,
                        item_count=count)


def ids(numbers: range | list[int]) -> list[str]:
    return [line(n).item_id for n in numbers]


def states(ledger: DynamoLedger, item_ids: list[str]) -> set[tuple[EmbeddingStatus, str | None]]:
    return {(item.embedding_status, item.batch_id) for item in ledger.get_items(item_ids).values()}


def on_call(client: Any, operation: str, action: Any, *, at_call: int) -> None:
    """Run `action()` just before the `at_call`-th (1-based) `operation` request of `client`."""
    calls = {"n": 0}

    def hook(**_: Any) -> None:
        calls["n"] += 1
        if calls["n"] == at_call:
            action()

    client.meta.events.register_first(f"before-call.dynamodb.{operation}", hook)


@pytest.fixture
def rival(moto_endpoint: Any, dynamodb_table: str) -> DynamoLedger:
    """A second ledger on the same table with its own client: another process, as far as DynamoDB knows."""
    return DynamoLedger(moto_endpoint.client("dynamodb"), dynamodb_table)


def test_claim_rolls_back_earlier_transactions_when_a_later_one_conflicts(
        dynamo_ledger: DynamoLedger, dynamodb_client: Any, rival: DynamoLedger) -> None:
    dynamo_ledger.add_items([line(n) for n in range(ITEMS_IN_BIG_CLAIM)])
    # Between our check and our third transaction, another execution claims line 55.
    on_call(dynamodb_client, "TransactWriteItems",
            lambda: rival.claim_batch(summary("rival", 1), ids([55])), at_call=3)
    with pytest.raises(ClaimConflictError, match="LINE#00055"):
        dynamo_ledger.claim_batch(summary("ours"), ids(range(ITEMS_IN_BIG_CLAIM)))

    others = [n for n in range(ITEMS_IN_BIG_CLAIM) if n != 55]
    assert states(dynamo_ledger, ids(others)) == {(EmbeddingStatus.NONE, None)}
    assert dynamo_ledger.get_batch("ours") is None
    assert states(dynamo_ledger, ids([55])) == {(EmbeddingStatus.PENDING, "rival")}
    assert dynamo_ledger.count_items(ItemKind.LINE)[EmbeddingStatus.PENDING] == 1
    assert dynamo_ledger.find_items(ItemKind.LINE, EmbeddingStatus.PENDING, batch_id="ours") == []
    # nothing is stuck: the rest can be claimed at once
    dynamo_ledger.claim_batch(summary("again", len(others)), ids(others))
    assert states(dynamo_ledger, ids(others)) == {(EmbeddingStatus.PENDING, "again")}


def test_claim_interrupted_between_transactions_is_completed_by_a_rerun(
        dynamo_ledger: DynamoLedger, dynamodb_client: Any, rival: DynamoLedger) -> None:
    dynamo_ledger.add_items([line(n) for n in range(ITEMS_IN_BIG_CLAIM)])

    class ProcessDied(Exception):
        pass

    def die() -> None:
        raise ProcessDied

    on_call(dynamodb_client, "TransactWriteItems", die, at_call=2)
    with pytest.raises(ProcessDied):
        dynamo_ledger.claim_batch(summary("b1"), ids(range(ITEMS_IN_BIG_CLAIM)))
    assert rival.count_items(ItemKind.LINE)[EmbeddingStatus.PENDING] == 24  # first transaction only

    rival.claim_batch(summary("b1"), ids(range(ITEMS_IN_BIG_CLAIM)))  # the step is retried
    assert states(rival, ids(range(ITEMS_IN_BIG_CLAIM))) == {(EmbeddingStatus.PENDING, "b1")}
    assert rival.get_batch("b1") == summary("b1")
    found = rival.find_items(ItemKind.LINE, EmbeddingStatus.PENDING, batch_id="b1")
    assert [item.item_id for item in found] == ids(range(ITEMS_IN_BIG_CLAIM))


def test_update_of_different_fields_at_once_keeps_both(
        dynamo_ledger: DynamoLedger, dynamodb_client: Any, rival: DynamoLedger) -> None:
    dynamo_ledger.add_items([line(0)])
    dynamo_ledger.claim_batch(summary("b1", 1), ids([0]))
    on_call(dynamodb_client, "UpdateItem",
            lambda: rival.update_batch("b1", provider_batch_id="batch_abc"), at_call=1)
    dynamo_ledger.update_batch("b1", status=BatchStatus.IN_PROGRESS, provider_status="in_progress")
    batch = rival.get_batch("b1")
    assert (batch.status, batch.provider_status, batch.provider_batch_id) == (
        BatchStatus.IN_PROGRESS, "in_progress", "batch_abc")
    in_progress = rival.list_batches(statuses=[BatchStatus.IN_PROGRESS])
    assert [b.batch_id for b in in_progress] == ["b1"]
    assert rival.list_batches(statuses=[BatchStatus.PENDING]) == []


def test_table_layout_matches_the_original_system(dynamo_ledger: DynamoLedger, dynamodb_client: Any,
                                                  dynamodb_table: str) -> None:
    dynamo_ledger.add_items([line(2)])
    dynamo_ledger.claim_batch(summary("b1", 1), ids([2]))
    lease = dynamo_ledger.acquire_lock("lines", "exec-A", 60)

    def raw(pk: str, sk: str) -> dict[str, Any]:
        return dynamodb_client.get_item(TableName=dynamodb_table,
                                        Key={"PK": {"S": pk}, "SK": {"S": sk}})["Item"]

    item = raw("IMAGE#img-1", "RECEIPT#00001#LINE#00002")
    assert item["GSI2PK"] == {"S": "EMBEDDING#line#PENDING"}
    assert item["embedding_status"] == {"S": "PENDING"}
    batch = raw("BATCH#b1", "STATUS")
    assert batch["GSI1PK"] == {"S": "STATUS#PENDING"}
    assert batch["GSI1SK"]["S"].startswith("BATCH_TYPE#LINE_EMBEDDING#")
    assert batch["GSI1SK"]["S"].endswith("#BATCH_ID#b1")
    lock = raw("LOCK#lines", "LEASE")
    # No deadline and no TTL on a lease (a slow holder's must not vanish): a record version and lengths
    assert lock["rvn"] == {"S": lease.rvn} and float(lock["lease_seconds"]["N"]) == 60
    assert "ttl" not in lock and "expires_at" not in lock
    assert lock["heartbeat_at"]["S"].endswith("Z")  # the holder's clock, ISO-8601, for people
    ttl = dynamodb_client.describe_time_to_live(TableName=dynamodb_table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")
    definition = table_definition("anything")
    assert definition["BillingMode"] == "PAY_PER_REQUEST"
    assert {index["IndexName"] for index in definition["GlobalSecondaryIndexes"]} == {"GSI1", "GSI2", "GSI3"}


def test_ensure_table_is_idempotent(dynamodb_client: Any, dynamodb_table: str) -> None:
    ensure_table(dynamodb_client, dynamodb_table)  # already created by the fixture
    assert dynamodb_client.describe_table(TableName=dynamodb_table)["Table"]["TableStatus"] == "ACTIVE"


def test_fencing_counter_survives_the_loss_of_a_lease_item(
        dynamo_ledger: DynamoLedger, dynamodb_client: Any, dynamodb_table: str) -> None:
    first = dynamo_ledger.acquire_lock("lines", "exec-A", 60)
    # A lease written before issue 24 carried a TTL, and DynamoDB may still sweep it: do what it would do.
    dynamodb_client.delete_item(TableName=dynamodb_table,
                                Key={"PK": {"S": "LOCK#lines"}, "SK": {"S": "LEASE"}})
    second = dynamo_ledger.acquire_lock("lines", "exec-B", 60)
    assert second is not None and second.fencing_token > first.fencing_token


def test_item_id_contradicting_its_fields_is_refused_naming_it(dynamo_ledger: DynamoLedger) -> None:
    wrong = line(3).model_copy(update={"line_id": 4})
    with pytest.raises(InvalidInputError, match="LINE#00003"):
        dynamo_ledger.add_items([line(1), wrong])
    assert dynamo_ledger.get_items(ids([1, 3])) == {}  # refused before anything was written


def test_throttling_is_transient(moto_endpoint: Any, dynamodb_table: str) -> None:
    client = single_attempt_client("dynamodb", moto_endpoint.url, moto_endpoint.region)
    answer_with(client, "GetItem", 400,
                b'{"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",'
                b' "message": "Rate of requests exceeds the allowed throughput."}',
                {"x-amzn-ErrorType": "ThrottlingException"})
    ledger = DynamoLedger(client, dynamodb_table)
    with pytest.raises(StoreUnavailableError, match="ThrottlingException") as caught:
        ledger.get_batch("b1")
    assert caught.value.transient


def test_transaction_conflict_is_transient_not_a_claim_conflict(
        moto_endpoint: Any, dynamodb_table: str, dynamo_ledger: DynamoLedger) -> None:
    dynamo_ledger.add_items([line(0)])
    client = single_attempt_client("dynamodb", moto_endpoint.url, moto_endpoint.region)
    answer_with(client, "TransactWriteItems", 400,
                b'{"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",'
                b' "message": "Transaction cancelled", "CancellationReasons": '
                b'[{"Code": "None"}, {"Code": "TransactionConflict"}]}',
                {"x-amzn-ErrorType": "TransactionCanceledException"})
    with pytest.raises(StoreUnavailableError, match="TransactionConflict"):
        DynamoLedger(client, dynamodb_table).claim_batch(summary("b1", 1), ids([0]))
    assert states(dynamo_ledger, ids([0])) == {(EmbeddingStatus.NONE, None)}


def test_a_lease_written_before_record_versions_can_be_watched_and_taken_over(
        dynamo_ledger: DynamoLedger, dynamodb_client: Any, dynamodb_table: str) -> None:
    for sk, attributes in (("FENCE", {"fencing_token": {"N": "7"}}),
                           ("LEASE", {"owner": {"S": "old"}, "fencing_token": {"N": "7"},
                                      "expires_at": {"N": "1000000000"}, "ttl": {"N": "1000086400"}})):
        dynamodb_client.put_item(TableName=dynamodb_table,
                                 Item={"PK": {"S": "LOCK#lines"}, "SK": {"S": sk}, **attributes})

    held = dynamo_ledger.current_lease("lines")

    assert (held.owner, held.fencing_token, held.rvn) == ("old", 7, "legacy-7")
    assert dynamo_ledger.acquire_lock("lines", "new", 30) is None
    taken = dynamo_ledger.acquire_lock("lines", "new", 30, takeover_rvn=held.rvn)
    assert taken is not None and taken.fencing_token == 8
