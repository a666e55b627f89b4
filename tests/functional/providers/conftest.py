"""Fixtures: a running fake OpenAI server and providers wired to it (real SDK, real HTTP)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from fake_openai import FakeOpenAI, running_fake_openai  # noqa: E402
from tenacity import wait_none

from embedding_ingest.providers.batch_files import encode_request  # noqa: E402
from embedding_ingest.providers.openai_batch import OpenAIBatchProvider  # noqa: E402
from embedding_ingest.stores.records import EmbeddingItem, ItemKind  # noqa: E402


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


Requests = Callable[..., bytes]


@pytest.fixture
def make_requests() -> Requests:
    """JSONL request lines for ids item-0..item-{n-1} (or `ids`), as the pipeline writes them."""

    def build(
        count: int = 4,
        *,
        ids: list[str] | None = None,
        model: str = "local-hash-ngram-v1",
        dimensions: int | None = None,
    ) -> bytes:
        ids = ids if ids is not None else [f"item-{n}" for n in range(count)]
        items = [
            EmbeddingItem(
                item_id=item_id,
                kind=ItemKind.WORD,
                image_id="img",
                receipt_number=1,
                line_id=n,
                word_id=1,
                text=f"word {n}",
                embed_text=f"receipt word {item_id} <left> total",
            )
            for n, item_id in enumerate(ids)
        ]
        return b"".join(encode_request(item, model, dimensions) for item in items)

    return build


@pytest.fixture
def walk() -> Callable[..., list[str]]:
    """Retrieve until the batch reaches a terminal status; the statuses seen, in order."""

    def run(provider, provider_batch_id: str, max_polls: int = 20) -> list[str]:
        seen = []
        for _ in range(max_polls):
            batch = provider.retrieve(provider_batch_id)
            seen.append(batch.status.value)
            if batch.status.value in {"completed", "failed", "expired", "cancelled"}:
                return seen
        raise AssertionError(f"batch {provider_batch_id} still {seen[-1]} after {max_polls} polls")

    return run
