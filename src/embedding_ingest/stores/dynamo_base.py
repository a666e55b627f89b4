"""What every part of DynamoLedger shares: the client (rebuilt after pickling), error translation,
the record <-> attribute mapping (on boto3's TypeSerializer/TypeDeserializer), and paged query /
batch / transaction helpers.

Records are stored as native attributes (readable in the console, usable in conditions); dict and
list fields are JSON strings; None fields are absent so `attribute_not_exists` means "unset".
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar, get_origin

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from pydantic import BaseModel

from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.stores.exceptions import StoreUnavailableError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Attributes = dict[str, dict[str, Any]]

TRANSACTION_LIMIT = 25  # items per TransactWriteItems (DynamoDB allows 100; 25 keeps moto and old SDKs happy)
BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
WRITE_WORKERS = 8  # parallel single-item conditional writes (the client is thread-safe)
_UNPROCESSED_RETRIES = 8

_TRANSIENT_CODES = {
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "TransactionInProgressException",
    "TransactionConflictException", "LimitExceededException",
}
_CONFIG_CODES = {"ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException"}
# Cancellation reasons that mean "contention or throttling", not "your condition is false".
_TRANSIENT_REASONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}


# -- codec -------------------------------------------------------------------------------------
# boto3's own codec. It refuses Python floats (not every float is an exact decimal); ours (epoch
# seconds) go as the Decimal of their repr, the shortest decimal that reads back as the same float,
# which is what the hand-written codec it replaced sent. Numbers come back as Decimal, which the
# records' int and float fields accept. Cost, measured in CPU time per EmbeddingItem: encode 13.5 ->
# 23.8 us, decode 19.5 -> 20.8 us, next to 61 us for botocore to parse that item out of a Query page
# (and a network round trip per page or write): no reason to keep a codec of our own.
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def attribute_value(value: Any) -> dict[str, Any]:
    """The DynamoDB attribute value ({"S": ...}, {"N": ...}, {"BOOL": ...}...) of a Python value.
    Raises TypeError for a value DynamoDB cannot hold (boto3's message)."""
    return _SERIALIZER.serialize(Decimal(repr(value)) if isinstance(value, float) else value)


def plain_value(attribute: dict[str, Any]) -> Any:
    """The Python value of a DynamoDB attribute value (numbers as Decimal)."""
    return _DESERIALIZER.deserialize(attribute)


@cache
def _json_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(name for name, field in model.model_fields.items()
                     if get_origin(field.annotation) in (dict, list))


def record_attributes(record: BaseModel) -> Attributes:
    json_fields = _json_fields(type(record))
    attributes: Attributes = {}
    for name, value in record.model_dump(mode="json").items():
        if value is None:
            continue
        if name in json_fields:
            attributes[name] = {"S": json.dumps(value, sort_keys=True, separators=(",", ":"))}
        else:
            attributes[name] = attribute_value(value)
    return attributes


def record_from(model: type[M], item: Attributes) -> M:
    json_fields = _json_fields(model)
    data = {}
    for name in model.model_fields:
        if name in item:
            value = plain_value(item[name])
            data[name] = json.loads(value) if name in json_fields else value
    return model.model_validate(data)


def chunked(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_condition_failure(exc: ClientError) -> bool:
    return _code(exc) == "ConditionalCheckFailedException"


# -- client access -----------------------------------------------------------------------------
class DynamoBase:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self.table = table

    def __getstate__(self) -> dict[str, Any]:
        from embedding_ingest.stores.aws_clients import budget_of

        meta = self._client.meta
        return {"table": self.table, "endpoint_url": meta.endpoint_url, "region": meta.region_name,
                "budget": budget_of(self._client)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from embedding_ingest.stores.aws_clients import make_client

        client = make_client("dynamodb", endpoint_url=state["endpoint_url"], region=state["region"],
                             budget_seconds=state.get("budget"))
        DynamoBase.__init__(self, client, state["table"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(table={self.table!r}, endpoint={self._client.meta.endpoint_url!r})"

    def close(self) -> None:
        with contextlib.suppress(AttributeError):  # older botocore clients have no close()
            self._client.close()

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Backend errors -> store errors. Conditional failures pass through for the caller."""
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            if code in _TRANSIENT_CODES:
                raise StoreUnavailableError(f"DynamoDB {action} on {self.table}: {code} (retry)") from exc
            if code in _CONFIG_CODES:
                raise ConfigurationError(f"DynamoDB {action} on table {self.table!r}: {code}") from exc
            raise
        except (ConnectionError, HTTPClientError) as exc:
            raise StoreUnavailableError(f"DynamoDB unreachable during {action}: {exc}") from exc
        except BotoCoreError as exc:
            raise ConfigurationError(f"DynamoDB {action} on {self.table!r} failed: {exc}") from exc

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        with self._translated(operation):
            return getattr(self._client, operation)(TableName=self.table, **kwargs)

    def _conditional(self, operation: str, **kwargs: Any) -> dict[str, Any] | None:
        """A conditional write; None when its condition was false."""
        try:
            return self._call(operation, **kwargs)
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise

    def _get(self, key: Attributes) -> Attributes | None:
        return self._call("get_item", Key=key, ConsistentRead=True).get("Item")

    def _query(self, *, page_size: int | None = None, **kwargs: Any) -> Iterator[Attributes]:
        if page_size is not None:
            kwargs["Limit"] = page_size
        return self._items_of("query", **kwargs)

    def _scan(self, **kwargs: Any) -> Iterator[Attributes]:
        """Every item a Scan returns, page after page (reads the whole table: for rare operations)."""
        return self._items_of("scan", **kwargs)

    def _items_of(self, operation: str, **kwargs: Any) -> Iterator[Attributes]:
        while True:
            page = self._call(operation, **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _count(self, **kwargs: Any) -> int:
        return sum(page.get("Count", 0) for page in self._query_pages(Select="COUNT", **kwargs))

    def _query_pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            page = self._call("query", **kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _batch_get(self, keys: Sequence[Attributes]) -> list[Attributes]:
        found: list[Attributes] = []
        for chunk in chunked(keys, BATCH_GET_LIMIT):
            request = {self.table: {"Keys": list(chunk), "ConsistentRead": True}}
            for attempt in range(_UNPROCESSED_RETRIES):
                with self._translated("batch_get_item"):
                    response = self._client.batch_get_item(RequestItems=request)
                found.extend(response.get("Responses", {}).get(self.table, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2 ** attempt, 1.0))
            else:
                raise StoreUnavailableError(f"DynamoDB kept throttling batch_get_item on {self.table}")
        return found

    def _batch_put(self, items: Sequence[Attributes]) -> None:
        """Unconditional puts (for records whose key makes a rewrite harmless)."""
        for chunk in chunked(items, BATCH_WRITE_LIMIT):
            request = {self.table: [{"PutRequest": {"Item": item}} for item in chunk]}
            for attempt in range(_UNPROCESSED_RETRIES):
                with self._translated("batch_write_item"):
                    response = self._client.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2 ** attempt, 1.0))
            else:
                raise StoreUnavailableError(f"DynamoDB kept throttling batch_write_item on {self.table}")

    def _transact(self, operations: Sequence[dict[str, Any]]) -> list[str] | None:
        """Run one TransactWriteItems. None on success; on a false condition, the cancellation
        reason code of each operation ("None" for those that were fine)."""
        request = []
        for operation in operations:
            (kind, body), = operation.items()
            request.append({kind: {"TableName": self.table, **body}})
        try:
            with self._translated("transact_write_items"):
                self._client.transact_write_items(TransactItems=request)
        except ClientError as exc:
            if _code(exc) != "TransactionCanceledException":
                raise
            reasons = [str(reason.get("Code", "None"))
                       for reason in exc.response.get("CancellationReasons", [])]
            if any(reason in _TRANSIENT_REASONS for reason in reasons) or not reasons:
                raise StoreUnavailableError(
                    f"DynamoDB transaction on {self.table} cancelled by contention: {reasons}") from exc
            return reasons
        return None

    @staticmethod
    def _parallel(function: Any, values: Iterable[Any]) -> list[Any]:
        values = list(values)
        if len(values) <= 1:
            return [function(value) for value in values]
        with ThreadPoolExecutor(max_workers=min(WRITE_WORKERS, len(values))) as pool:
            return list(pool.map(function, values))
