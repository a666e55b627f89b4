"""Fixtures of the Lambda tests (conftest re-exports them next to the moto server's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_openai import API_KEY, FakeOpenAI, running_fake_openai
from moto_server import MotoEndpoint, unique_name
from package_logging import restored_package_logging

from embedding_ingest.aws.functions.container import forget_step_contexts
from embedding_ingest.aws.functions.secrets import forget_cached_keys

DIMENSIONS = 32


@pytest.fixture
def fake_openai(tmp_path: Path) -> Iterator[FakeOpenAI]:
    with running_fake_openai(tmp_path / "fake-openai", dimensions=DIMENSIONS) as fake:
        fake.set_faults(polls_per_stage=0)  # a batch is complete on its first retrieve
        yield fake


@pytest.fixture(autouse=True)
def fresh_containers() -> Iterator[None]:
    """Each test starts as a cold Lambda container: no cached contexts, no cached key. Entrypoints make
    the package log JSON and stop propagating; other tests get their logging back afterwards."""
    forget_step_contexts()
    forget_cached_keys()
    with restored_package_logging():
        yield
    forget_step_contexts()
    forget_cached_keys()


@pytest.fixture
def secret_arn(moto_endpoint: MotoEndpoint) -> str:
    client = moto_endpoint.client("secretsmanager")
    return client.create_secret(Name=unique_name("openai-key"), SecretString=API_KEY)["ARN"]


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_endpoint: MotoEndpoint, s3_bucket: str,
               dynamodb_table: str, fake_openai: FakeOpenAI, secret_arn: str) -> dict[str, str]:
    """The environment the template gives the functions, pointed at the test's services."""
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": "embedding-ingest-test",
        "AWS_ENDPOINT_URL": moto_endpoint.url,
        "CHROMADB_BUCKET": s3_bucket,
        "DYNAMODB_TABLE_NAME": dynamodb_table,
        "CHROMADB_STORAGE_MODE": "auto",
        "EMBEDDING_PROVIDER": "openai",
        "EMBEDDING_DIMENSIONS": str(DIMENSIONS),
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY_SECRET_ARN": secret_arn,
        "EMBEDDING_INGEST_HOME": str(tmp_path / "lambda-tmp"),  # stands in for Lambda's /tmp
    }
    for name in ("OPENAI_API_KEY", "OPENAI_API_KEY_SSM_PARAMETER", "CHROMA_ROOT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
