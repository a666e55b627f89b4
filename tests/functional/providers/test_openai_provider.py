"""OpenAIBatchProvider with the real openai SDK against the fake OpenAI server over real HTTP."""

import logging

import numpy as np
import pytest
from fake_openai import API_KEY
from provider_files import read_file
from tenacity import wait_none

from embedding_ingest.providers.base import ProviderBatchStatus
from embedding_ingest.providers.batch_files import OutputRecord, iter_output_records, parse_error_file
from embedding_ingest.providers.exceptions import (
    BatchLimitError,
    ProviderAccountError,
    ProviderRequestError,
    ProviderTransientError,
    UnknownProviderBatchError,
    UnknownProviderFileError,
)
from embedding_ingest.providers.local import LocalBatchProvider
from embedding_ingest.providers.openai_batch import OpenAIBatchProvider

MODEL = "text-embedding-3-small"
DIMS = 64


@pytest.fixture
def requests(make_requests):
    def build(count=4, **kwargs):
        return make_requests(count, model=MODEL, dimensions=DIMS, **kwargs)

    return build


def outputs(provider, batch) -> dict[str, list[float]]:
    records = list(iter_output_records(read_file(provider, batch.output_file_id), dimensions=DIMS))
    assert all(isinstance(record, OutputRecord) for record in records), records
    return {record.custom_id: record.embedding.tolist() for record in records}


def statuses(fake, method, path) -> list[int]:
    return [call.status for call in fake.calls_to(method, path)]


def test_names_itself_openai(openai_provider):
    assert openai_provider.name == "openai"


def test_walks_every_stage_and_the_output_parses_back_to_the_submitted_ids(
    openai_provider, fake_openai, requests, walk
):
    data = requests(5)
    submitted = openai_provider.submit("batch-1", data, {"kind": "line"})
    assert submitted.status is ProviderBatchStatus.VALIDATING
    assert submitted.metadata == {"kind": "line", "batch_id": "batch-1"}
    assert read_file(openai_provider, submitted.input_file_id) == data  # the upload arrived byte for byte

    assert walk(openai_provider, submitted.provider_batch_id) == ["in_progress", "finalizing", "completed"]
    done = openai_provider.retrieve(submitted.provider_batch_id)
    assert (done.request_counts.total, done.request_counts.completed) == (5, 5)
    assert sorted(outputs(openai_provider, done)) == [f"item-{n}" for n in range(5)]
    assert done.error_file_id is None


def test_failed_requests_come_back_in_the_error_file(openai_provider, requests, walk):
    batch = openai_provider.submit("b", requests(4), {"local_fail_custom_ids": "item-1,item-3"})
    walk(openai_provider, batch.provider_batch_id)
    done = openai_provider.retrieve(batch.provider_batch_id)
    errors = parse_error_file(read_file(openai_provider, done.error_file_id))
    assert sorted(errors) == ["item-1", "item-3"]
    assert sorted(outputs(openai_provider, done)) == ["item-0", "item-2"]


def test_a_batch_with_a_bad_request_line_fails_naming_the_line(openai_provider, requests, walk):
    batch = openai_provider.submit("b", requests(2) + b'{"custom_id": "z"}\n', {})
    assert walk(openai_provider, batch.provider_batch_id) == ["failed"]
    failed = openai_provider.retrieve(batch.provider_batch_id)
    assert failed.errors == ["line 3: invalid_request: method must be POST, got None"]
    assert failed.output_file_id is None


def test_expired_batches_keep_partial_results(openai_provider, fake_openai, requests, walk):
    fake_openai.set_faults(outcome="expired")
    batch = openai_provider.submit("b", requests(4), {})
    assert walk(openai_provider, batch.provider_batch_id) == ["in_progress", "expired"]
    expired = openai_provider.retrieve(batch.provider_batch_id)
    assert sorted(outputs(openai_provider, expired)) == ["item-0", "item-1"]
    errors = parse_error_file(read_file(openai_provider, expired.error_file_id))
    assert sorted(errors) == ["item-2", "item-3"]
    assert all(f.reason.startswith("batch_expired") and not f.content for f in errors.values())


def test_cancel_goes_through_cancelling_to_cancelled(openai_provider, requests, walk):
    batch = openai_provider.submit("b", requests(2), {})
    assert openai_provider.cancel(batch.provider_batch_id).status is ProviderBatchStatus.CANCELLING
    assert walk(openai_provider, batch.provider_batch_id) == ["cancelled"]


def test_submitting_the_same_batch_id_twice_makes_one_provider_batch(
    openai_provider, fake_openai, requests, walk
):
    first = openai_provider.submit("batch-9", requests(2), {"local_outcome": "failed"})
    assert openai_provider.submit("batch-9", requests(2), {}).provider_batch_id == first.provider_batch_id
    assert len(fake_openai.batches_created()) == 1
    assert len(fake_openai.calls_to("POST", "/v1/files")) == 1

    walk(openai_provider, first.provider_batch_id)  # failed: a resubmission replaces it
    second = openai_provider.submit("batch-9", requests(2), {})
    assert second.provider_batch_id != first.provider_batch_id
    assert openai_provider.submit("batch-9", requests(2), {}).provider_batch_id == second.provider_batch_id
    assert len(fake_openai.batches_created()) == 2


def test_a_create_whose_response_was_lost_is_found_instead_of_created_again(
    openai_provider, fake_openai, requests
):
    fake_openai.fail_next(1, status=500, method="POST", path="/v1/batches", after_handling=True)
    batch = openai_provider.submit("b", requests(2), {})
    assert [created["id"] for created in fake_openai.batches_created()] == [batch.provider_batch_id]
    assert statuses(fake_openai, "POST", "/v1/batches") == [500]


def test_the_existing_batch_is_found_beyond_the_first_page_of_the_listing(
    openai_provider, fake_openai, requests
):
    first = openai_provider.submit("old-batch", requests(1), {})
    engine = fake_openai.engine
    upload = engine.upload(requests(1), filename="x.jsonl", purpose="batch")
    for n in range(120):  # newer batches push ours onto the second page (100 per page)
        engine.create_batch(
            input_file_id=upload["id"],
            endpoint="/v1/embeddings",
            completion_window="24h",
            metadata={"batch_id": f"other-{n}"},
            batch_id=f"batch_other_{n}",
        )
    again = openai_provider.submit("old-batch", requests(1), {})
    assert again.provider_batch_id == first.provider_batch_id
    assert len(fake_openai.calls_to("POST", "/v1/batches")) == 1
    assert len(fake_openai.calls_to("GET", "/v1/batches")) == 3  # first submit: 1 page; second: 2 pages


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_are_retried_until_the_call_succeeds(openai_provider, fake_openai, requests, status):
    fake_openai.fail_next(2, status=status)
    batch = openai_provider.submit(
        "b", requests(2), {}
    )  # the listing is retried twice, then all goes through
    assert statuses(fake_openai, "GET", "/v1/batches") == [status, status, 200]
    path = f"/v1/batches/{batch.provider_batch_id}"
    fake_openai.fail_next(2, status=status, path=path)
    assert openai_provider.retrieve(batch.provider_batch_id).status is ProviderBatchStatus.IN_PROGRESS
    assert statuses(fake_openai, "GET", path) == [status, status, 200]


def test_persistent_server_errors_become_a_transient_provider_error(openai_provider, fake_openai, requests):
    batch = openai_provider.submit("b", requests(1), {})
    fake_openai.fail_next(10, status=500)
    with pytest.raises(
        ProviderTransientError, match="batch retrieve still failing after 3 attempts"
    ) as caught:
        openai_provider.retrieve(batch.provider_batch_id)
    assert "InternalServerError" in str(caught.value)
    assert statuses(fake_openai, "GET", f"/v1/batches/{batch.provider_batch_id}") == [500, 500, 500]


def test_connection_failures_are_transient(tmp_path):
    client = __import__("openai").OpenAI(api_key=API_KEY, base_url="http://127.0.0.1:9/v1")  # nothing listens
    provider = OpenAIBatchProvider(client, dimensions=DIMS, max_attempts=2, wait=wait_none())
    with pytest.raises(ProviderTransientError, match="APIConnectionError"):
        provider.retrieve("batch_x")


def test_unknown_batches_and_files(openai_provider, fake_openai):
    with pytest.raises(UnknownProviderBatchError) as caught:
        openai_provider.retrieve("batch_missing")
    assert caught.value.provider_batch_id == "batch_missing"
    with pytest.raises(UnknownProviderBatchError):
        openai_provider.cancel("batch_missing")
    with pytest.raises(UnknownProviderFileError, match="file-missing"):
        read_file(openai_provider, "file-missing")
    assert len(fake_openai.calls_to("GET", "/v1/batches/batch_missing")) == 1  # a 404 is not retried


def test_rejected_requests_are_terminal_and_not_retried(openai_provider, fake_openai, requests, walk):
    batch = openai_provider.submit("b", requests(1), {"local_polls_per_stage": "0"})
    walk(openai_provider, batch.provider_batch_id)
    with pytest.raises(ProviderRequestError, match="BadRequestError: .*completed and cannot be cancelled"):
        openai_provider.cancel(batch.provider_batch_id)
    assert statuses(fake_openai, "POST", f"/v1/batches/{batch.provider_batch_id}/cancel") == [400]


def test_the_api_key_never_reaches_logs_or_errors(fake_openai, requests, caplog):
    wrong_key_client = __import__("openai").OpenAI(api_key="sk-wrong-secret", base_url=fake_openai.base_url)
    caplog.set_level(logging.DEBUG)
    provider = OpenAIBatchProvider(wrong_key_client, dimensions=DIMS, max_attempts=2, wait=wait_none())
    with pytest.raises(ProviderAccountError, match="refused the API key .401 invalid_api_key") as caught:
        provider.retrieve("batch_x")
    good = OpenAIBatchProvider(fake_openai.client(), dimensions=DIMS, max_attempts=2, wait=wait_none())
    fake_openai.fail_next(5, status=500)
    with pytest.raises(ProviderTransientError) as transient:
        good.submit("b", requests(1), {})
    ours = [record.getMessage() for record in caplog.records if record.name.startswith("embedding_ingest")]
    assert ours  # the retries were logged
    for text in [caplog.text, str(caught.value), str(transient.value), repr(provider), repr(good)]:
        assert "sk-wrong-secret" not in text and API_KEY not in text


def test_submit_checks_batch_limits_before_calling_the_api(openai_provider, fake_openai):
    with pytest.raises(BatchLimitError):
        openai_provider.submit("b", b"", {})
    assert fake_openai.calls == []


def test_query_embeddings_are_chunked_and_kept_in_input_order(openai_provider, fake_openai):
    texts = [f"receipt line {n}" for n in range(2_100)]
    vectors = openai_provider.embed(texts)
    assert len(fake_openai.calls_to("POST", "/v1/embeddings")) == 2  # at most 2,048 inputs per request
    np.testing.assert_allclose(np.asarray(vectors), fake_openai.engine.embed(texts, DIMS), rtol=1e-6)


def test_fake_and_local_provider_compute_the_same_embeddings(openai_provider, tmp_path, requests, walk):
    local = LocalBatchProvider(tmp_path / "local", dimensions=DIMS, polls_per_stage=0)
    data = requests(3)
    remote_batch = openai_provider.submit("b", data, {"local_polls_per_stage": "0"})
    local_batch = local.submit("b", data, {})
    walk(openai_provider, remote_batch.provider_batch_id)
    walk(local, local_batch.provider_batch_id)
    remote = outputs(openai_provider, openai_provider.retrieve(remote_batch.provider_batch_id))
    here = outputs(local, local.retrieve(local_batch.provider_batch_id))
    assert remote == here
