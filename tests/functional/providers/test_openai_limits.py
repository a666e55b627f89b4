"""OpenAIBatchProvider at the API's real limits, with faults injected into the fake OpenAI server:
retries that honour Retry-After, fail-fast client errors, and the paginated batch listing."""

from __future__ import annotations

import time

import pytest
from tenacity import wait_none

from embedding_ingest.providers.exceptions import (
    ProviderRequestError,
    ProviderTransientError,
)
from embedding_ingest.providers.openai_batch import OpenAIBatchProvider


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def provider(openai_client, sleeps) -> OpenAIBatchProvider:
    """No backoff of its own (wait_none), so any wait recorded comes from Retry-After."""
    return OpenAIBatchProvider(openai_client, model="text-embedding-3-small", dimensions=64, max_attempts=4,
                               wait=wait_none(), sleep=sleeps.append)


def statuses(fake, method, path):
    return [call.status for call in fake.calls_to(method, path)]


def test_a_429_waits_at_least_what_retry_after_asks(provider, fake_openai, make_requests, sleeps):
    fake_openai.fail_next(2, status=429, method="POST", path="/v1/files", retry_after="7")
    provider.submit("b", make_requests(2), {})
    assert statuses(fake_openai, "POST", "/v1/files") == [429, 429, 200]
    assert sleeps == [7.0, 7.0]


def test_retry_after_as_an_http_date_is_honoured_and_capped(provider, fake_openai, make_requests, sleeps):
    in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    fake_openai.fail_next(1, status=429, path="/v1/batches", retry_after=in_a_minute)
    fake_openai.fail_next(1, status=429, path="/v1/batches", retry_after="100000")
    with pytest.raises(ProviderTransientError, match="asked to wait 100000 s .* left to the next run"):
        provider.list_batches(created_after=0)
    assert len(sleeps) == 1 and 50 <= sleeps[0] <= 61  # a day's Retry-After: no sleep, as the SDK does
    assert statuses(fake_openai, "GET", "/v1/batches") == [429, 429]


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_transient_statuses_on_files_and_batches_calls_are_retried(provider, fake_openai, make_requests,
                                                                   status):
    fake_openai.fail_next(1, status=status, method="POST", path="/v1/files")
    fake_openai.fail_next(1, status=status, method="POST", path="/v1/batches")
    batch = provider.submit("b", make_requests(1), {})
    fake_openai.fail_next(2, status=status, path=f"/v1/batches/{batch.provider_batch_id}")
    assert provider.retrieve(batch.provider_batch_id).provider_batch_id == batch.provider_batch_id
    assert statuses(fake_openai, "POST", "/v1/files") == [status, 200]
    assert statuses(fake_openai, "POST", "/v1/batches") == [status, 200]
    assert statuses(fake_openai, "GET", f"/v1/batches/{batch.provider_batch_id}") == [status, status, 200]


@pytest.mark.parametrize(("status", "error"), [(400, "BadRequestError"), (404, "not found"),
                                               (422, "UnprocessableEntityError")])
def test_client_errors_fail_at_once_with_one_line_naming_the_call(provider, fake_openai, make_requests,
                                                                  status, error):
    fake_openai.fail_next(1, status=status, method="POST", path="/v1/files")
    with pytest.raises(ProviderRequestError) as caught:
        provider.submit("b", make_requests(1), {})
    message = str(caught.value)
    assert message.startswith("OpenAI file upload") and error in message and "\n" not in message
    assert statuses(fake_openai, "POST", "/v1/files") == [status]  # not retried


def test_retries_are_bounded(provider, fake_openai, sleeps):
    fake_openai.fail_next(10, status=503, path="/v1/batches")
    with pytest.raises(ProviderTransientError, match="OpenAI batch list still failing after 4 attempts"):
        provider.list_batches(created_after=0)
    assert statuses(fake_openai, "GET", "/v1/batches") == [503] * 4


def test_the_listing_pages_through_every_batch_down_to_created_after(provider, fake_openai, make_requests):
    engine = fake_openai.engine
    upload = engine.upload(make_requests(1), filename="x.jsonl", purpose="batch")
    for n in range(230):
        engine.create_batch(input_file_id=upload["id"], endpoint="/v1/embeddings", completion_window="24h",
                            metadata={"batch_id": f"ours-{n}"}, batch_id=f"batch_{n:04d}")
    listed = provider.list_batches(created_after=0)
    assert sorted(b.provider_batch_id for b in listed) == [f"batch_{n:04d}" for n in range(230)]
    assert len(fake_openai.calls_to("GET", "/v1/batches")) == 3  # 100 per page
    assert provider.list_batches(created_after=time.time() + 3600) == []
