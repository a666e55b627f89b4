"""Locks and the published snapshot pointer in DynamoDB, changed only by conditional writes.

A lock is two items under PK=LOCK#{name}: the lease (owner, fencing_token and the record version `rvn`
with the lease's lengths and the holder's times; no deadline, no TTL: records.Lease) and the fencing
counter. Acquiring writes both in one transaction, conditioned on the counter still holding the value
we read and on the lease being free or (a takeover) still at the record version the waiter watched:
two racing acquirers cannot both win, and every acquisition gets a strictly larger token. A heartbeat
writes a new rvn, conditioned on owner and token. Waiters that look again only after fixed waits keep
their count in WAIT#{waiter} items (swept by TTL a day after their last write).

Publishing is one TransactWriteItems: a ConditionCheck that the lease is still ours (owner and token),
the pointer update conditioned on the expected current version, and the version record.
"""

from __future__ import annotations

import time
from typing import Any

from embedding_ingest.config import LOCK_LEASE_DEFAULT_SECONDS
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.dynamo_base import DynamoBase, record_attributes, record_from
from embedding_ingest.stores.dynamo_schema import (
    LOCK_WAIT_TTL_SECONDS,
    TTL_ATTRIBUTE,
    fence_key,
    lease_key,
    lock_wait_key,
    pointer_key,
    version_key,
)
from embedding_ingest.stores.exceptions import LockLostError, PointerConflictError, StaleFencingTokenError
from embedding_ingest.stores.records import (
    Lease,
    SnapshotVersion,
    check_staging_pointer,
    heartbeat_interval,
    holder_time,
    new_rvn,
)

_FAILED = "ConditionalCheckFailed"


def _holder_condition(lease: Lease) -> dict[str, Any]:
    return {"ConditionExpression": "#owner = :owner AND fencing_token = :token",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": {":owner": {"S": lease.owner},
                                          ":token": {"N": str(lease.fencing_token)}}}


def _stamp(now: float | None) -> str | None:
    return holder_time(time.time() if now is None else now)


class DynamoLocks(DynamoBase):
    # -- locks ------------------------------------------------------------------------------------
    def _holder(self, name: str, raw: dict[str, Any] | None) -> Lease | None:
        if raw is None or "owner" not in raw:
            return None
        if "rvn" not in raw:  # written before record versions (issue 24): it never changes
            token = int(raw["fencing_token"]["N"])
            return Lease(name=name, owner=raw["owner"]["S"], fencing_token=token, rvn=f"legacy-{token}",
                         lease_seconds=LOCK_LEASE_DEFAULT_SECONDS,
                         heartbeat_seconds=heartbeat_interval(LOCK_LEASE_DEFAULT_SECONDS))
        return record_from(Lease, {**raw, "name": {"S": name}})

    def acquire_lock(self, name: str, owner: str, lease_seconds: float, *, takeover_rvn: str | None = None,
                     now: float | None = None) -> Lease | None:
        seconds = float(lease_seconds)
        if not seconds > 0:
            raise InvalidInputError(f"lock lease_seconds must be positive, got {lease_seconds!r}")
        lease_raw, fence_raw = self._get(lease_key(name)), self._get(fence_key(name))
        held = self._holder(name, lease_raw)
        if held is not None and (takeover_rvn is None or held.rvn != takeover_rvn):
            return None
        seen = int(fence_raw["fencing_token"]["N"]) if fence_raw is not None else 0
        at = _stamp(now)
        lease = Lease(name=name, owner=owner, fencing_token=seen + 1, rvn=new_rvn(), lease_seconds=seconds,
                      heartbeat_seconds=heartbeat_interval(seconds), acquired_at=at, heartbeat_at=at)
        counter_condition = ("attribute_not_exists(fencing_token)" if seen == 0
                             else "fencing_token = :seen")
        counter_values = {":next": {"N": str(seen + 1)}}
        if seen:
            counter_values[":seen"] = {"N": str(seen)}
        if held is None:
            lease_condition: dict[str, Any] = {
                "ConditionExpression": "attribute_not_exists(PK) OR attribute_not_exists(#owner)",
                "ExpressionAttributeNames": {"#owner": "owner"}}
        elif held.rvn.startswith("legacy-"):
            lease_condition = {"ConditionExpression": "attribute_not_exists(rvn) AND fencing_token = :held",
                               "ExpressionAttributeValues": {":held": {"N": str(held.fencing_token)}}}
        else:  # the lease the waiter watched, unchanged since
            lease_condition = {"ConditionExpression": "rvn = :watched",
                               "ExpressionAttributeValues": {":watched": {"S": held.rvn}}}
        reasons = self._transact([
            {"Update": {"Key": fence_key(name), "UpdateExpression": "SET fencing_token = :next",
                        "ConditionExpression": counter_condition,
                        "ExpressionAttributeValues": counter_values}},
            {"Put": {"Item": {**lease_key(name), **record_attributes(lease)}, **lease_condition}},
        ])
        return lease if reasons is None else None  # a false condition: someone else got there first

    def heartbeat(self, lease: Lease, *, now: float | None = None) -> Lease:
        renewed = lease.model_copy(update={"rvn": new_rvn(), "heartbeat_at": _stamp(now)})
        condition = _holder_condition(lease)
        condition["ExpressionAttributeValues"].update(
            {":rvn": {"S": renewed.rvn}, ":at": {"S": renewed.heartbeat_at or ""}})
        response = self._conditional(
            "update_item", Key=lease_key(lease.name), UpdateExpression="SET rvn = :rvn, heartbeat_at = :at",
            **condition)
        if response is None:
            raise LockLostError(f"lock {lease.name!r} is no longer held by {lease.owner!r} "
                                f"(token {lease.fencing_token}): released, broken or taken over")
        return renewed

    def _free(self, name: str, condition: dict[str, Any]) -> bool:
        """Remove the holder (the item and its fencing token stay) with a new rvn, if `condition` holds.
        A false condition on a lock left free at that very rvn is our own write, repeated by the SDK
        after its reply was lost: it counts as done."""
        freed_at = new_rvn()
        values = {**condition.get("ExpressionAttributeValues", {}), ":rvn": {"S": freed_at}}
        names = {**condition.get("ExpressionAttributeNames", {}), "#owner": "owner"}
        response = self._conditional(
            "update_item", Key=lease_key(name),
            UpdateExpression="REMOVE #owner, acquired_at, heartbeat_at SET rvn = :rvn",
            ConditionExpression=condition["ConditionExpression"], ExpressionAttributeNames=names,
            ExpressionAttributeValues=values)
        if response is not None:
            return True
        now = self._get(lease_key(name))
        return now is not None and "owner" not in now and now.get("rvn") == {"S": freed_at}

    def release_lock(self, lease: Lease) -> bool:
        return self._free(lease.name, _holder_condition(lease))

    def current_lease(self, name: str) -> Lease | None:
        return self._holder(name, self._get(lease_key(name)))

    def break_lock(self, name: str, *, by: str, rvn: str | None = None, fencing_token: int | None = None,
                   now: float | None = None) -> bool:
        if (rvn is None) == (fencing_token is None):
            raise InvalidInputError("break_lock: give one of rvn (watched) and fencing_token (forced)")
        if rvn is not None:
            return self._free(name, {"ConditionExpression": "attribute_exists(#owner) AND rvn = :seen",
                                     "ExpressionAttributeValues": {":seen": {"S": rvn}}})
        return self._free(name, {"ConditionExpression": "attribute_exists(#owner) AND fencing_token = :seen",
                                 "ExpressionAttributeValues": {":seen": {"N": str(fencing_token)}}})

    def note_lock_wait(self, name: str, waiter: str, rvn: str) -> int:
        raw = self._get(lock_wait_key(name, waiter))
        seen = int(raw["waits"]["N"]) if raw is not None and raw.get("rvn", {}).get("S") == rvn else 0
        # Absolute values: a Put the SDK repeats (its reply lost) writes the same again.
        self._call("put_item", Item={**lock_wait_key(name, waiter), "rvn": {"S": rvn},
                                     "waits": {"N": str(seen + 1)},
                                     TTL_ATTRIBUTE: {"N": str(int(time.time()) + LOCK_WAIT_TTL_SECONDS)}})
        return seen

    def forget_lock_wait(self, name: str, waiter: str) -> None:
        self._call("delete_item", Key=lock_wait_key(name, waiter))

    # -- snapshot pointer -------------------------------------------------------------------------
    # A staging pointer ("lines+<id>", ports.SnapshotLedger) is one more PK of the same shape.
    def get_published(self, database: str, *, pointer: str | None = None) -> SnapshotVersion | None:
        raw = self._get(pointer_key(pointer or database))
        return record_from(SnapshotVersion, raw) if raw is not None else None

    def publish_version(self, version: SnapshotVersion, *, expected_current: str | None,
                        lease: Lease, pointer: str | None = None) -> None:
        key = pointer or version.database
        if lease.name != version.database:
            raise StaleFencingTokenError(
                f"lease is for lock {lease.name!r}, but publishing {version.database!r} needs that lock")
        check = _holder_condition(lease)
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
            {"Update": {"Key": pointer_key(key), "UpdateExpression": expression,
                        "ConditionExpression": pointer_condition,
                        "ExpressionAttributeNames": names, "ExpressionAttributeValues": pointer_values}},
            {"Put": {"Item": {**version_key(key, version.version), **fields}}},
        ])
        if reasons is None:
            return
        if reasons[0] == _FAILED:
            raise StaleFencingTokenError(
                f"publishing {version.database} {version.version}: lease of {lease.owner!r} with token "
                f"{lease.fencing_token} is no longer the current holder of the lock")
        current = self.get_published(version.database, pointer=pointer)
        raise PointerConflictError(
            f"publishing {key} {version.version}: expected current version "
            f"{expected_current!r}, found {current.version if current else None!r}")

    def list_versions(self, database: str, *, pointer: str | None = None) -> list[SnapshotVersion]:
        raws = self._query(KeyConditionExpression="PK = :p AND begins_with(SK, :v)",
                           ExpressionAttributeValues={":p": pointer_key(pointer or database)["PK"],
                                                      ":v": {"S": "VERSION#"}}, ConsistentRead=True)
        versions = [record_from(SnapshotVersion, raw) for raw in raws]
        return sorted(versions, key=lambda v: (v.published_at, v.version), reverse=True)

    def forget_version(self, database: str, version: str, *, pointer: str | None = None) -> None:
        self._call("delete_item", Key=version_key(pointer or database, version))

    def forget_pointer(self, pointer: str) -> None:
        check_staging_pointer(pointer)
        for version in self.list_versions(pointer, pointer=pointer):
            self.forget_version(pointer, version.version, pointer=pointer)
        self._call("delete_item", Key=pointer_key(pointer))
