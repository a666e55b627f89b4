"""The reliability scenarios on the production adapters: S3ObjectStore and DynamoLedger against moto's
server (real HTTP), the local provider and Chroma cache in a local home.

A template (one version published, two batches waiting; scenarios.prepare_template's story) is made
once per process and kind (shared_template); each case gets its own copy: a fresh bucket with every
object copied, a fresh table with every item copied, and a copy of the home directory.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto_server import MotoEndpoint, unique_name
from pipeline import Workspace, make_workspace, receipts_file
from scenarios import SETTINGS, TEMPLATE_RECEIPT, smaller_thresholds, submit_in_batches

from embedding_ingest.stores.dynamo_schema import ensure_table
from embedding_ingest.stores.records import ItemKind


@dataclass(frozen=True)
class AwsState:
    """Where one AWS workspace keeps its data."""

    bucket: str
    table: str
    home: Path


# The cases whose crashed holder's lease is taken over on DynamoDB (test_crash_matrix_aws, one per workflow):
# each call is an HTTP round trip here, so its lease is twice the embedded cases' short one.
AWS_EXPIRING_LEASE_SECONDS = 4


def aws_workspace(root: Path, endpoint: MotoEndpoint, state: AwsState, **overrides: Any) -> Workspace:
    """A workspace whose objects are in `state.bucket` and ledger in `state.table` (home under root)."""
    assert state.home == root / "home"
    return make_workspace(root, CHROMADB_BUCKET=state.bucket, DYNAMODB_TABLE_NAME=state.table,
                          AWS_ENDPOINT_URL=endpoint.url, **{**SETTINGS, **overrides})


def new_state(root: Path, endpoint: MotoEndpoint) -> AwsState:
    bucket, table = unique_name("crash"), unique_name("crash")
    endpoint.client("s3").create_bucket(Bucket=bucket)
    ensure_table(endpoint.client("dynamodb"), table)
    return AwsState(bucket=bucket, table=table, home=root / "home")


def prepare_aws_template(root: Path, endpoint: MotoEndpoint, kind: ItemKind) -> AwsState:
    """One published version and two batches waiting (scenarios.prepare_template's), on S3 + DynamoDB."""
    state = new_state(root, endpoint)
    ws = aws_workspace(root, endpoint, state)
    ws.import_receipts(receipts_file(root, 1, start=TEMPLATE_RECEIPT))
    submit_in_batches(ws, kind, 1)
    with smaller_thresholds():
        assert ws.run(kind).status.value == "SUCCEEDED"
    ws.import_receipts(receipts_file(root, 1, start=TEMPLATE_RECEIPT + 1))
    submit_in_batches(ws, kind, 2)
    ws.ledger.close()
    return state


@functools.cache
def shared_template(endpoint: MotoEndpoint, kind: ItemKind) -> AwsState:
    """prepare_aws_template's state, made once per process and kind on `endpoint` (under a temporary
    directory removed at exit) and shared by every test that copies it: the crash matrix's cases and the
    lost-replies runs start from the same story."""
    root = Path(tempfile.mkdtemp(prefix=f"reliability-aws-template-{kind.value}-"))
    atexit.register(shutil.rmtree, root, True)
    return prepare_aws_template(root, endpoint, kind)


def copy_state(template: AwsState, root: Path, endpoint: MotoEndpoint) -> AwsState:
    """Every object, every ledger item and the home directory of `template`, under new names."""
    copy = new_state(root, endpoint)
    keys, items = _contents(template, endpoint)
    s3 = endpoint.client("s3")
    for key in keys:
        s3.copy_object(Bucket=copy.bucket, Key=key, CopySource={"Bucket": template.bucket, "Key": key})
    dynamodb = endpoint.client("dynamodb")
    for start in range(0, len(items), 25):  # BatchWriteItem takes at most 25 requests
        request = {copy.table: [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]}
        while request:
            request = dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
    shutil.copytree(template.home, copy.home)
    return copy


@functools.cache
def _contents(template: AwsState, endpoint: MotoEndpoint) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """The object keys and ledger items of a template, read once per process: a template never changes
    once prepared (every case works on its copy), and moto's Scan of its table costs ~0.6 s CPU a time."""
    s3 = endpoint.client("s3")
    keys = tuple(entry["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=template.bucket)
                 for entry in page.get("Contents", []))
    pages = endpoint.client("dynamodb").get_paginator("scan").paginate(TableName=template.table)
    return keys, [item for page in pages for item in page["Items"]]
