"""Builds the ports from Settings: the one place that knows which adapter backs which port.

`CHROMADB_BUCKET` set => S3 objects; `DYNAMODB_TABLE_NAME` set => DynamoDB ledger; otherwise the
embedded default under $EMBEDDING_INGEST_HOME (local directory + SQLite + local provider).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.providers.models import (  # noqa: F401 - the CLI's names for the configured model
    LOCAL_DEFAULT_MODEL,
    embedding_dimensions,
    embedding_model,
)

if TYPE_CHECKING:
    from embedding_ingest.providers.base import BatchProvider
    from embedding_ingest.steps.context import StepContext
    from embedding_ingest.stores.ports import Ledger, ObjectStore


def aws_region(settings: Settings) -> str:
    """AWS_REGION, else AWS_DEFAULT_REGION (`--region` sets it), else the profile's region.
    Raises ConfigurationError (one line) when none is set: boto3 would fail later with NoRegionError."""
    import boto3

    region = settings.aws_region or boto3.session.Session().region_name
    if not region:
        raise ConfigurationError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) or pass --region")
    return region


def aws_client(service: str, settings: Settings):  # boto3 stays out of handlers: only here
    """A boto3 client of `service` in the configured region (and AWS_ENDPOINT_URL if set), retrying
    throttling and 5xx answers and logging each retry (stores/aws_clients.py)."""
    from embedding_ingest.stores.aws_clients import make_client

    return make_client(service, endpoint_url=settings.aws_endpoint_url, region=aws_region(settings),
                       budget_seconds=settings.call_budget_seconds)



def build_object_store(settings: Settings) -> ObjectStore:
    if settings.uses_aws_objects:
        from embedding_ingest.stores.s3_objects import S3ObjectStore

        return S3ObjectStore(aws_client("s3", settings), settings.chromadb_bucket)
    from embedding_ingest.stores.local_objects import LocalObjectStore

    settings.objects_dir.mkdir(parents=True, exist_ok=True)
    return LocalObjectStore(settings.objects_dir)


def build_ledger(settings: Settings) -> Ledger:
    if settings.uses_aws_ledger:
        from embedding_ingest.stores.dynamo_ledger import DynamoLedger

        return DynamoLedger(aws_client("dynamodb", settings), settings.dynamodb_table_name)
    from embedding_ingest.stores.sqlite_ledger import SqliteLedger

    settings.home.mkdir(parents=True, exist_ok=True)
    return SqliteLedger(settings.ledger_path)


def build_provider(settings: Settings) -> BatchProvider:
    if settings.provider == "local":
        from embedding_ingest.providers.local import LocalBatchProvider

        return LocalBatchProvider(settings.home / "provider", model=embedding_model(settings),
                                  dimensions=embedding_dimensions(settings),
                                  polls_per_stage=settings.local_polls_per_stage,
                                  latency_seconds=settings.local_latency_seconds)
    if settings.provider == "openai":
        if not settings.openai_api_key:
            raise ConfigurationError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY (or the secret loader)")
        import openai

        from embedding_ingest.providers.openai_batch import OpenAIBatchProvider, openai_call_budget

        dimensions = embedding_dimensions(settings)  # a width the model cannot make fails before any call
        budget = openai_call_budget(settings.call_budget_seconds)
        client = openai.OpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url,
                               timeout=budget.request_timeout)
        return OpenAIBatchProvider(client, model=embedding_model(settings), dimensions=dimensions,
                                   max_attempts=budget.attempts, max_wait_seconds=budget.max_wait)
    raise ConfigurationError(f"unknown EMBEDDING_PROVIDER {settings.provider!r} (expected local or openai)")


def build_step_context(settings: Settings) -> StepContext:
    from embedding_ingest.steps.context import StepContext

    return StepContext(objects=build_object_store(settings), ledger=build_ledger(settings),
                       provider=build_provider(settings), settings=settings)
