"""Fixtures: a running fake OpenAI server and providers wired to it (real SDK, real HTTP)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from tenacity import wait_none

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))  # tests/support has no package

from fake_openai import FakeOpenAI, running_fake_openai  # noqa: E402

from embedding_ingest.providers.openai_batch import OpenAIBatchProvider  # noqa: E402


@pytest.fixture
def fake_openai(tmp_path: Path) -> Iterator[FakeOpenAI]:
    with running_fake_openai(tmp_path / "fake-openai") as fake:
        yield fake


@pytest.fixture
def openai_client(fake_openai: FakeOpenAI) -> Iterator[openai.OpenAI]:
    client = fake_openai.client()
    yield client
    client.close()


@pytest.fixture
def openai_provider(openai_client: openai.OpenAI) -> OpenAIBatchProvider:
    """Retries without waiting, so tests of the retry policy take no time."""
    return OpenAIBatchProvider(
        openai_client, model="text-embedding-3-small", dimensions=64, max_attempts=3, wait=wait_none()
    )
