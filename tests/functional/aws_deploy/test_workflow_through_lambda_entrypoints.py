"""Both state machines of the template, run by the local engine against the Lambda entrypoints, with
S3, DynamoDB and Secrets Manager on moto's HTTP server and OpenAI on the fake server: the workflow
succeeds, every item is published and marked, and every AWS call each function made is allowed by
that function's role in the CloudFormation template (and nothing else reads the OpenAI key)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from fake_openai import FakeOpenAI
from iam_check import ACCOUNT, REGION, CallRecorder, Permission, TemplateResolver, allowed, table_arn
from lambda_fixtures import DIMENSIONS
from template_checks import resolved_definition
from tenacity import wait_none

from asl_local.clock import RealClock
from asl_local.invokers import InProcessInvoker
from embedding_ingest.aws.deploy.template import build_template
from embedding_ingest.aws.function_table import BY_NAME, FUNCTIONS
from embedding_ingest.aws.functions.handlers import ENTRYPOINTS
from embedding_ingest.pipeline import definitions
from embedding_ingest.pipeline.definitions import local_resource_arn
from embedding_ingest.pipeline.engine_store import WorkflowEngine
from embedding_ingest.providers.openai_batch import OpenAIBatchProvider
from embedding_ingest.receipts.ids import line_item_id, word_item_id
from embedding_ingest.steps import chunks, list_pending
from embedding_ingest.stores.dynamo_ledger import DynamoLedger
from embedding_ingest.stores.records import EmbeddingItem, EmbeddingStatus, ExecutionStatus, ItemKind
from embedding_ingest.stores.sqlite_ledger import SqliteLedger
from embedding_ingest.submission.submit import submit

# The line run takes the branches a large one does, with the thresholds lowered (module constants read at
# call time, as tests/reliability's smaller_thresholds): 3 batches > 2 => the listing goes through an S3
# manifest; one delta per chunk, 3 chunks > 2 => chunks are merged in groups. The word run's 2 batches
# stay below both (inline listing, one flat merge), as with the full-size thresholds.
LINE_BATCHES = 3
WORD_BATCHES = 2


class LambdaContext:
    def __init__(self, function_name: str, n: int) -> None:
        self.function_name = function_name
        self.aws_request_id = f"req-{function_name}-{n}"


def _items(kind: ItemKind, count: int) -> list[EmbeddingItem]:
    items = []
    for n in range(count):
        is_line = kind is ItemKind.LINE
        item_id = line_item_id("img-aws", 1, n) if is_line else word_item_id("img-aws", 1, n, 0)
        items.append(EmbeddingItem(item_id=item_id, kind=kind, image_id="img-aws", receipt_number=1,
                                   line_id=n, word_id=None if is_line else 0, text=f"ITEM {n}",
                                   embed_text=f"ITEM {n} RM {n}.90", metadata={"line_id": n}))
    return items


def _definition(template: dict[str, Any], kind: str) -> dict[str, Any]:
    """The template's Definition with each function ARN resolved to what the engine invokes."""
    return resolved_definition(template, kind, local_resource_arn)


def _role_statements(template: dict[str, Any], resolver: TemplateResolver, function: str) -> list[dict]:
    role = template["Resources"][f"{BY_NAME[function].logical_id}Role"]
    return resolver.resolve(role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"])


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> CallRecorder:
    session = boto3.Session()  # clients built from now on (the Lambda contexts') report their calls
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    calls = CallRecorder()
    calls.attach(session)
    return calls


def _engine(tmp_path: Path, recorder: CallRecorder, monkeypatch: pytest.MonkeyPatch) -> WorkflowEngine:
    counter = iter(range(1_000_000))

    def invoking(function_name: str):
        def invoke(payload: dict) -> dict:
            # Each function is its own container: its own /tmp, so nothing one step cached on disk
            # (a published version, a downloaded delta) spares another step an S3 read it needs.
            monkeypatch.setenv("EMBEDDING_INGEST_HOME", str(tmp_path / "containers" / function_name))
            recorder.current = function_name
            recorder.invoked.add(function_name)
            try:
                return ENTRYPOINTS[function_name](payload, LambdaContext(function_name, next(counter)))
            finally:
                recorder.current = None
        return invoke

    invoker = InProcessInvoker({name: invoking(name) for name in ENTRYPOINTS})
    # One Map iteration at a time, so a call from any thread belongs to the one running invocation.
    return WorkflowEngine(SqliteLedger(tmp_path / "engine.sqlite3"), invoker,
                          clock=RealClock(sleep_function=lambda _s: None), max_map_threads=1)


def test_both_workflows_publish_every_item_using_only_what_each_role_allows(
        tmp_path, lambda_env, recorder, fake_openai: FakeOpenAI, dynamodb_client, dynamodb_table, s3_bucket,
        secret_arn, monkeypatch):
    ledger = DynamoLedger(dynamodb_client, dynamodb_table)
    seeding_provider = OpenAIBatchProvider(fake_openai.client(), model="text-embedding-3-small",
                                           dimensions=DIMENSIONS, wait=wait_none())
    monkeypatch.setattr(list_pending, "MANIFEST_MAX_INLINE_BATCHES", 2)
    monkeypatch.setattr(chunks, "CHUNK_SIZE", 1)
    monkeypatch.setattr(definitions, "GROUPING_THRESHOLD_CHUNKS", 2)  # read by build_template below
    for kind, count in ((ItemKind.LINE, LINE_BATCHES), (ItemKind.WORD, WORD_BATCHES)):
        ledger.add_items(_items(kind, count))
        submit(kind, ledger, seeding_provider, max_items_per_batch=1)
    template = build_template()
    engine = _engine(tmp_path, recorder, monkeypatch)

    recorder.recording = True
    records = {kind: engine.start_execution(kind, _definition(template, kind), f"{kind}-run-1")
               for kind in ("line", "word")}
    recorder.recording = False

    for kind, record in records.items():
        assert record.status is ExecutionStatus.SUCCEEDED, (kind, record.error, record.cause)
    line_output = json.loads(records["line"].output)
    assert line_output["final_merge_result"]["total_embeddings"] == LINE_BATCHES
    assert line_output["mark_complete_result"]["batches_marked"] == LINE_BATCHES
    assert json.loads(records["word"].output)["mark_complete_result"]["items_marked"] == WORD_BATCHES
    assert ledger.count_items(ItemKind.LINE)[EmbeddingStatus.SUCCESS] == LINE_BATCHES
    assert ledger.count_items(ItemKind.WORD)[EmbeddingStatus.SUCCESS] == WORD_BATCHES

    # Every function ran (create-chunk-groups only for a grouped merge), the line listing went through its
    # S3 manifest, and every call each function made is one its role in the template allows.
    assert recorder.invoked == set(BY_NAME)
    manifests = {p.function for p in recorder.permissions
                 if p.action == "s3:PutObject" and "/poll_manifests/" in p.resource}
    assert manifests == {"embedding-list-pending"}, manifests
    assert None not in {p.function for p in recorder.permissions}
    resolver = TemplateResolver(
        {"ChromaBucket": s3_bucket, "LedgerTable": dynamodb_table, "OpenAIApiKeySecretArn": secret_arn},
        {"ChromaBucket.Arn": f"arn:aws:s3:::{s3_bucket}", "LedgerTable.Arn": table_arn(dynamodb_table),
         **{f"{f.logical_id}LogGroup.Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{f.name}:*"
            for f in FUNCTIONS}})
    denied = sorted({(p.function, p.action, p.resource) for p in recorder.permissions
                     if not allowed(_role_statements(template, resolver, p.function), p)})
    assert denied == []

    # Only functions that call OpenAI read the key - list-pending (the batch listing orders the polls)
    # is the first of a run - and only once per container however many batches they polled (this
    # process plays one container for every function; the key is cached per process).
    key_reads = [p for p in recorder.permissions if p.action == "secretsmanager:GetSecretValue"]
    assert [p.function for p in key_reads] == ["embedding-list-pending"]


def test_a_role_without_a_prefix_is_refused_by_the_same_check(s3_bucket):
    """The policy check above is not vacuous: list-pending may not write a snapshot."""
    template = build_template()
    resolver = TemplateResolver({"ChromaBucket": s3_bucket, "LedgerTable": "t",
                                 "OpenAIApiKeySecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:k"},
                                {"ChromaBucket.Arn": f"arn:aws:s3:::{s3_bucket}",
                                 "LedgerTable.Arn": table_arn("t"),
                                 "ListPendingFunctionLogGroup.Arn": "arn:aws:logs:x"})
    statements = _role_statements(template, resolver, "embedding-list-pending")
    write = Permission("embedding-list-pending", "s3:PutObject", f"arn:aws:s3:::{s3_bucket}/lines/snapshot/x")
    manifest = Permission("embedding-list-pending", "s3:PutObject",
                          f"arn:aws:s3:::{s3_bucket}/poll_manifests/run-1/manifest.json")
    assert not allowed(statements, write)
    assert allowed(statements, manifest)
