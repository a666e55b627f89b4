"""Locks and the published snapshot pointer in DynamoDB, changed only by conditional writes.

A lock is two items under PK=LOCK#{name}: the lease (owner, fencing_token, expires_at as epoch
NUMBERS, and a TTL attribute so abandoned leases disappear) and the fencing counter (no TTL, so a
swept lease can never make the counter start again at 1). Acquiring writes both in one transaction,
conditioned on the counter still holding the value we read: two racing acquirers cannot both win,
and every acquisition gets a strictly larger token.

Publishing is one TransactWriteItems: a ConditionCheck that the lease is still ours and unexpired,
the pointer update conditioned on the expected current version, and the version record.
"""

from __future__ import annotations

import time
from typing import Any

from embedding_ingest.stores.dynamo_base import DynamoBase, record_attributes, record_from
from embedding_ingest.stores.dynamo_schema import (
    LEASE_TTL_GRACE_SECONDS,
    TTL_ATTRIBUTE,
    fence_key,
    lease_key,
    pointer_key,
    version_key,
)
from embedding_ingest.stores.exceptions import LockLostError, PointerConflictError, StaleFencingTokenError
from embedding_ingest.stores.records import Lease, SnapshotVersion

_FAILED = "ConditionalCheckFailed"


def _number(value: float) -> dict[str, str]:
    return {"N": repr(value)}


def _ttl(expires_at: float) -> dict[str, str]:
    return {"N": str(int(expires_at) + LEASE_TTL_GRACE_SECONDS)}


def _holder_condition(lease: Lease, now: float) -> dict[str, Any]:
    return {"ConditionExpression": "#owner = :owner AND fencing_token = :token AND expires_at > :now",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": {":owner": {"S": lease.owner},
                                          ":token": {"N": str(lease.fencing_token)},
                                          ":now": _number(now)}}


class DynamoLocks(DynamoBase):
    # -- locks ------------------------------------------------------------------------------------
    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> Lease | None:
        now = time.time()
        lease_raw, fence_raw = self._get(lease_key(name)), self._get(fence_key(name))
        if lease_raw is not None and "owner" in lease_raw and float(lease_raw["expires_at"]["N"]) > now:
            return None
        seen = int(fence_raw["fencing_token"]["N"]) if fence_raw is not None else 0
        lease = Lease(name=name, owner=owner, fencing_token=seen + 1, expires_at=now + ttl_seconds)
        counter_condition = ("attribute_not_exists(fencing_token)" if seen == 0
                             else "fencing_token = :seen")
        counter_values = {":next": {"N": str(seen + 1)}}
        if seen:
            counter_values[":seen"] = {"N": str(seen)}
        reasons = self._transact([
            {"Update": {"Key": fence_key(name), "UpdateExpression": "SET fencing_token = :next",
                        "ConditionExpression": counter_condition,
                        "ExpressionAttributeValues": counter_values}},
            {"Put": {"Item": {**lease_key(name), **record_attributes(lease),
                              TTL_ATTRIBUTE: _ttl(lease.expires_at)},
                     "ConditionExpression": "attribute_not_exists(PK) OR attribute_not_exists(#owner) "
                                            "OR expires_at <= :now",
                     "ExpressionAttributeNames": {"#owner": "owner"},
                     "ExpressionAttributeValues": {":now": _number(now)}}},
        ])
        return lease if reasons is None else None  # a false condition: someone else got there first

    def heartbeat(self, lease: Lease, ttl_seconds: float) -> Lease:
        now = time.time()
        renewed = lease.model_copy(update={"expires_at": now + ttl_seconds})
        condition = _holder_condition(lease, now)
        condition["ExpressionAttributeValues"].update(
            {":expires": _number(renewed.expires_at), ":ttl": _ttl(renewed.expires_at)})
        condition["ExpressionAttributeNames"]["#ttl"] = TTL_ATTRIBUTE
        response = self._conditional(
            "update_item", Key=lease_key(lease.name),
            UpdateExpression="SET expires_at = :expires, #ttl = :ttl", **condition)
        if response is None:
            raise LockLostError(f"lock {lease.name!r} is no longer held by {lease.owner!r} "
                                f"(token {lease.fencing_token}): expired, released or taken")
        return renewed

    def release_lock(self, lease: Lease) -> bool:
        # The lease item goes; the fencing counter item stays, so tokens keep increasing.
        response = self._conditional(
            "delete_item", Key=lease_key(lease.name),
            ConditionExpression="#owner = :owner AND fencing_token = :token",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":owner": {"S": lease.owner},
                                       ":token": {"N": str(lease.fencing_token)}})
        return response is not None

    def current_lease(self, name: str) -> Lease | None:
        raw = self._get(lease_key(name))
        if raw is None or "owner" not in raw:
            return None
        lease = record_from(Lease, raw)
        return lease if lease.expires_at > time.time() else None

    # -- snapshot pointer -------------------------------------------------------------------------
    def get_published(self, database: str) -> SnapshotVersion | None:
        raw = self._get(pointer_key(database))
        return record_from(SnapshotVersion, raw) if raw is not None else None

    def publish_version(self, version: SnapshotVersion, *, expected_current: str | None,
                        lease: Lease) -> None:
        if lease.name != version.database:
            raise StaleFencingTokenError(
                f"lease is for lock {lease.name!r}, but publishing {version.database!r} needs that lock")
        now = time.time()
        check = _holder_condition(lease, now)
        pointer_values: dict[str, Any] = {":token": {"N": str(lease.fencing_token)}}
        if expected_current is None:
            pointer_condition = "attribute_not_exists(version)"
        else:
            pointer_condition = "version = :expected"
            pointer_values[":expected"] = {"S": expected_current}
        # A pointer written under a newer fencing token can never be overwritten by an older one.
        pointer_condition = (f"({pointer_condition}) AND "
                             "(attribute_not_exists(published_token) OR published_token <= :token)")
        fields = record_attributes(version)
        names = {f"#f{i}": field for i, field in enumerate(fields)}
        pointer_values.update({f":f{i}": value for i, value in enumerate(fields.values())})
        assignments = [f"#f{i} = :f{i}" for i in range(len(fields))] + ["published_token = :token"]
        stale_fields = sorted(set(SnapshotVersion.model_fields) - set(fields))
        names.update({f"#r{i}": field for i, field in enumerate(stale_fields)})
        expression = "SET " + ", ".join(assignments)
        if stale_fields:
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(stale_fields)))
        reasons = self._transact([
            {"ConditionCheck": {"Key": lease_key(lease.name), **check}},
            {"Update": {"Key": pointer_key(version.database), "UpdateExpression": expression,
                        "ConditionExpression": pointer_condition,
                        "ExpressionAttributeNames": names, "ExpressionAttributeValues": pointer_values}},
            {"Put": {"Item": {**version_key(version.database, version.version), **fields}}},
        ])
        if reasons is None:
            return
        if reasons[0] == _FAILED:
            raise StaleFencingTokenError(
                f"publishing {version.database} {version.version}: lease of {lease.owner!r} with token "
                f"{lease.fencing_token} is no longer the current, unexpired holder of the lock")
        current = self.get_published(version.database)
        raise PointerConflictError(
            f"publishing {version.database} {version.version}: expected current version "
            f"{expected_current!r}, found {current.version if current else None!r}")

    def list_versions(self, database: str) -> list[SnapshotVersion]:
        raws = self._query(KeyConditionExpression="PK = :p AND begins_with(SK, :v)",
                           ExpressionAttributeValues={":p": pointer_key(database)["PK"],
                                                      ":v": {"S": "VERSION#"}}, ConsistentRead=True)
        versions = [record_from(SnapshotVersion, raw) for raw in raws]
        return sorted(versions, key=lambda v: (v.published_at, v.version), reverse=True)

    def forget_version(self, database: str, version: str) -> None:
        self._call("delete_item", Key=version_key(database, version))
