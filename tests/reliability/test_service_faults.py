"""Real service faults during whole runs on S3 + DynamoDB (moto's server) and OpenAI (the fake server):
about 1 in 10 calls answered with throttling or a 5xx at the HTTP layer of the real clients. The run
succeeds, every item is published exactly once, and the retries are in the logs. AccessDenied on the
bucket is not retried: the run fails at once naming the bucket and the call, and nothing is lost."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import httpx
import openai
import pytest
from botocore.retries.standard import ExponentialBackoff
from fake_openai import API_KEY, FakeOpenAI, running_fake_openai
from http_faults import DYNAMODB_TRANSIENT, S3_ACCESS_DENIED, S3_TRANSIENT, AwsFaults, OpenAIFaults
from moto_server import MotoEndpoint
from pipeline import Workspace, make_workspace, receipts_file
from published_checks import assert_published_exactly_once
from sleep_recorder import SleepRecorder
from tenacity import wait_none

from embedding_ingest.providers.openai_batch import OpenAIBatchProvider
from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus, ExecutionStatus, ItemKind

pytestmark = pytest.mark.slow

DIMENSIONS = 16
RATE = 0.1


@pytest.fixture
def fake_openai(tmp_path: Path) -> Iterator[FakeOpenAI]:
    with running_fake_openai(tmp_path / "fake-openai", dimensions=DIMENSIONS) as fake:
        fake.set_faults(polls_per_stage=0)
        yield fake


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """The default session for clients made from now on (the workspace's), so faults reach only them."""
    fresh = boto3.Session()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", fresh)
    return fresh


def _workspace(tmp_path: Path, moto_endpoint: MotoEndpoint, bucket: str, table: str, fake: FakeOpenAI,
               openai_faults: OpenAIFaults | None = None, sleep: SleepRecorder | None = None) -> Workspace:
    ws = make_workspace(tmp_path, dimensions=DIMENSIONS, CHROMADB_BUCKET=bucket, DYNAMODB_TABLE_NAME=table,
                        AWS_ENDPOINT_URL=moto_endpoint.url, EMBEDDING_PROVIDER="openai",
                        OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY=API_KEY)
    if openai_faults is not None:
        client = openai.OpenAI(api_key=API_KEY, base_url=fake.base_url,
                               http_client=httpx.Client(transport=openai_faults))
        provider = OpenAIBatchProvider(client, model=ws.ctx.provider.model, dimensions=DIMENSIONS,
                                       wait=wait_none(), sleep=sleep or SleepRecorder())
        ws.ctx = replace(ws.ctx, provider=provider)
    return ws


def test_throttling_and_5xx_at_one_call_in_ten_are_retried_and_the_run_succeeds(
        tmp_path, moto_endpoint, s3_bucket, dynamodb_table, fake_openai, session, caplog, monkeypatch):
    # botocore's backoff switched off as OpenAI's is below (wait_none): what is checked is that every
    # fault is retried and logged, not how long the SDK's jitter waits (rand(0, 1) s per throttle).
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda _self, _context: 0)
    aws = AwsFaults({"s3": S3_TRANSIENT, "dynamodb": DYNAMODB_TRANSIENT}, rate=RATE)
    aws.attach(session)
    openai_faults = OpenAIFaults(every=round(1 / RATE), retry_after=2)
    waits = SleepRecorder()
    ws = _workspace(tmp_path, moto_endpoint, s3_bucket, dynamodb_table, fake_openai, openai_faults, waits)
    caplog.set_level(logging.INFO)

    ws.import_receipts(receipts_file(tmp_path, 1))
    report = ws.submit(ItemKind.LINE, max_items_per_batch=8)
    submitted = ws.item_ids(ItemKind.LINE) - ws.item_ids(ItemKind.LINE, EmbeddingStatus.NONE)
    records = ws.run_until_idle(ItemKind.LINE)

    assert report.batches and not report.refused
    assert [r.status for r in records] == [ExecutionStatus.SUCCEEDED] * len(records), records[-1].cause
    aws.enabled = False
    assert_published_exactly_once(ws, ItemKind.LINE, submitted)
    assert len(fake_openai.batches_created()) == len(report.batches)  # no batch submitted twice

    # faults of every kind were injected, and each retry was logged
    codes = {code for (_service, _operation, code) in aws.injected}
    assert codes == {"SlowDown", "InternalError", "ProvisionedThroughputExceededException",
                     "ThrottlingException"}
    assert {status for (_path, status) in openai_faults.injected} == {429, 500}
    share = sum(aws.injected.values()) / sum(aws.calls.values())
    assert 0.05 < share < 0.2, share
    aws_retries = [r.getMessage() for r in caplog.records if r.name == "embedding_ingest.aws"]
    assert len(aws_retries) == sum(aws.injected.values())
    assert any("after SlowDown 503" in m for m in aws_retries)
    assert any("after ProvisionedThroughputExceededException 400" in m for m in aws_retries)
    openai_retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()
                      and r.getMessage().startswith("OpenAI")]
    assert len(openai_retries) == sum(openai_faults.injected.values())
    # a 429's Retry-After is honoured (the backoff itself is switched off here)
    throttled = sum(n for (_path, status), n in openai_faults.injected.items() if status == 429)
    assert waits.delays.count(2) == throttled and len(waits.delays) == len(openai_retries)


def test_access_denied_on_the_bucket_fails_at_once_naming_bucket_and_call_and_loses_nothing(
        tmp_path, moto_endpoint, s3_bucket, dynamodb_table, fake_openai, session):
    aws = AwsFaults({"s3": S3_ACCESS_DENIED}, rate=1.0)
    aws.enabled = False
    aws.attach(session)
    ws = _workspace(tmp_path, moto_endpoint, s3_bucket, dynamodb_table, fake_openai)
    ws.import_receipts(receipts_file(tmp_path, 1))
    batches = len(ws.submit(ItemKind.LINE, max_items_per_batch=40).batches)
    submitted = ws.item_ids(ItemKind.LINE) - ws.item_ids(ItemKind.LINE, EmbeddingStatus.NONE)

    aws.enabled = True  # the bucket policy changed under the running system
    failed = ws.run(ItemKind.LINE)

    assert failed.status is ExecutionStatus.FAILED
    assert failed.error == "ConfigurationError"
    assert f"bucket {s3_bucket!r}" in failed.cause and "AccessDenied" in failed.cause
    assert any(f"S3 {verb} of" in failed.cause for verb in ("put", "get", "list", "upload", "head"))
    # not retried, by the SDK or the state machine: at most one denied call per batch polled at once
    assert 1 <= sum(aws.injected.values()) <= batches, aws.injected
    # nothing lost: every submitted item still waits in its batch
    assert ws.item_ids(ItemKind.LINE, EmbeddingStatus.PENDING) == submitted
    assert not ws.ledger.list_batches(statuses=[BatchStatus.COMPLETED])

    aws.enabled = False  # access restored: the next run publishes everything once
    assert ws.run(ItemKind.LINE).status is ExecutionStatus.SUCCEEDED
    assert_published_exactly_once(ws, ItemKind.LINE, submitted)
