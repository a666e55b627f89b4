"""Issue 19 at the provider: OpenAI's behaviour as its spec and SDK describe it, through the real `openai`
SDK against the fake (whose every reply is checked against the vendored openai-openapi schemas).

Findings covered here: 1 (widths and `dimensions`), 3 (error classes and retry rules), 5 (streamed
files), 6 (decimal 200 MB, a new file per upload) and the schema check itself; the pipeline-level
findings are in tests/functional/pipeline/test_openai_findings.py."""

from __future__ import annotations

import json

import numpy as np
import openai
import pytest
from fake_openai import FakeOpenAI
from provider_files import read_file
from tenacity import wait_none

from embedding_ingest.backends import build_provider
from embedding_ingest.config import Settings
from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.providers import openai_batch
from embedding_ingest.providers.base import MAX_BYTES_PER_BATCH_FILE
from embedding_ingest.providers.batch_files import OutputRecord, iter_output_records, parse_error_file
from embedding_ingest.providers.exceptions import (
    ProviderAccountError,
    ProviderRequestError,
    ProviderTransientError,
)
from embedding_ingest.providers.openai_batch import OpenAIBatchProvider


@pytest.fixture
def sleeps() -> list[float]:
    return []


def provider_for(fake: FakeOpenAI, sleeps: list[float], *, model: str = "text-embedding-3-small",
                 dimensions: int = 1536) -> OpenAIBatchProvider:
    return OpenAIBatchProvider(fake.client(), model=model, dimensions=dimensions, max_attempts=4,
                               wait=wait_none(), sleep=sleeps.append)


def finished_output(provider, fake, data: bytes, dimensions: int) -> list[OutputRecord]:
    batch = provider.submit("b", data, {"local_polls_per_stage": "0"})
    done = provider.retrieve(batch.provider_batch_id)
    assert done.status.value == "completed", done
    records = list(iter_output_records(read_file(provider, done.output_file_id), dimensions=dimensions))
    assert all(isinstance(record, OutputRecord) for record in records), records
    return records


def sent_lines(fake: FakeOpenAI) -> list[dict]:
    return [json.loads(line) for batch in fake.batches_created()
            for line in fake.engine.file_content(batch["input_file_id"]).splitlines()]


# -- finding 1: dimensions ---------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "native"), [("text-embedding-3-small", 1536),
                                               ("text-embedding-3-large", 3072),
                                               ("text-embedding-ada-002", 1536)])
def test_a_request_without_dimensions_gets_the_models_native_width(fake_openai, make_requests, sleeps,
                                                                   model, native):
    provider = provider_for(fake_openai, sleeps, model=model, dimensions=native)
    records = finished_output(provider, fake_openai, make_requests(2, model=model, dimensions=None), native)
    assert [record.embedding.shape for record in records] == [(native,), (native,)]


def test_batch_lines_ask_for_the_configured_width_and_get_it(fake_openai, make_requests, sleeps):
    provider = provider_for(fake_openai, sleeps, dimensions=512)
    data = make_requests(3, model="text-embedding-3-small", dimensions=512)
    records = finished_output(provider, fake_openai, data, 512)
    assert {record.embedding.shape for record in records} == {(512,)}
    assert {line["body"]["dimensions"] for line in sent_lines(fake_openai)} == {512}


def test_ada_002_refuses_dimensions_as_the_api_does(fake_openai, make_requests, sleeps):
    provider = provider_for(fake_openai, sleeps, model="text-embedding-ada-002")
    batch = provider.submit("b", make_requests(1, model="text-embedding-ada-002", dimensions=1536),
                            {"local_polls_per_stage": "0"})
    done = provider.retrieve(batch.provider_batch_id)
    (failure,) = parse_error_file(read_file(provider, done.error_file_id)).values()
    assert failure.content and "This model does not support specifying dimensions." in failure.reason
    with pytest.raises(openai.BadRequestError, match="does not support specifying dimensions"):
        fake_openai.client().embeddings.create(model="text-embedding-ada-002", input="x", dimensions=1536)


@pytest.mark.parametrize(("variables", "message"), [
    ({"EMBEDDING_MODEL": "text-embedding-ada-002", "EMBEDDING_DIMENSIONS": "512"},
     "EMBEDDING_DIMENSIONS=512: text-embedding-ada-002 takes no `dimensions` (it always makes 1536-d "
     "vectors); unset EMBEDDING_DIMENSIONS"),
    ({"EMBEDDING_MODEL": "text-embedding-3-small", "EMBEDDING_DIMENSIONS": "2048"},
     "EMBEDDING_DIMENSIONS=2048: text-embedding-3-small makes at most 1536 dimensions"),
])
def test_a_width_the_model_cannot_make_is_refused_at_configuration_in_one_line(tmp_path, variables, message):
    settings = Settings(EMBEDDING_INGEST_HOME=str(tmp_path), EMBEDDING_PROVIDER="openai",
                        OPENAI_API_KEY="sk-x", **variables)
    with pytest.raises(ConfigurationError) as refused:
        build_provider(settings)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_an_unset_width_is_the_models_native_one(tmp_path):
    settings = Settings(EMBEDDING_INGEST_HOME=str(tmp_path), EMBEDDING_PROVIDER="openai",
                        OPENAI_API_KEY="sk-x", EMBEDDING_MODEL="text-embedding-3-large")
    assert build_provider(settings).dimensions == 3072
    # ada-002 at its native width is accepted: its requests never carry `dimensions` (refused even at 1536)
    ada = Settings(EMBEDDING_INGEST_HOME=str(tmp_path), EMBEDDING_PROVIDER="openai", OPENAI_API_KEY="sk-x",
                   EMBEDDING_MODEL="text-embedding-ada-002", EMBEDDING_DIMENSIONS="1536")
    assert build_provider(ada).dimensions == 1536


# -- base64 --------------------------------------------------------------------------------------------
def test_batch_lines_ask_for_base64_and_the_output_decodes_to_the_same_vectors_as_floats(
        fake_openai, make_requests, sleeps):
    provider = provider_for(fake_openai, sleeps, dimensions=64)
    base64_records = finished_output(provider, fake_openai,
                                     make_requests(3, model="text-embedding-3-small", dimensions=64), 64)
    assert {line["body"]["encoding_format"] for line in sent_lines(fake_openai)} == {"base64"}
    output_id = fake_openai.batches_created()[0]["output_file_id"]
    raw = json.loads(fake_openai.engine.file_content(output_id).splitlines()[0])
    assert isinstance(raw["response"]["body"]["data"][0]["embedding"], str)

    floats = fake_openai.engine.embed([f"receipt word item-{n} <left> total" for n in range(3)], 64)
    by_id = {record.custom_id: record.embedding for record in base64_records}
    for n in range(3):
        np.testing.assert_array_equal(by_id[f"item-{n}"], floats[n])


def test_query_embeddings_ask_for_base64_and_decode_little_endian_float32(fake_openai, sleeps):
    provider = provider_for(fake_openai, sleeps, dimensions=48)
    vectors = provider.embed(["TOTAL RM 12.50", "CASH"])
    (call,) = fake_openai.calls_to("POST", "/v1/embeddings")
    assert json.loads(call.body)["encoding_format"] == "base64"
    assert json.loads(call.body)["dimensions"] == 48
    assert vectors.dtype == np.float32 and vectors.shape == (2, 48)
    np.testing.assert_array_equal(vectors, fake_openai.engine.embed(["TOTAL RM 12.50", "CASH"], 48))


# -- finding 3: error classes --------------------------------------------------------------------------
@pytest.mark.parametrize("status", [408, 409])
def test_408_and_409_are_retried_as_the_sdk_does(fake_openai, make_requests, sleeps, status):
    provider = provider_for(fake_openai, sleeps)
    fake_openai.fail_next(1, status=status, method="POST", path="/v1/files")
    provider.submit("b", make_requests(1), {})
    assert [c.status for c in fake_openai.calls_to("POST", "/v1/files")] == [status, 200]


def test_x_should_retry_decides_first(fake_openai, make_requests, sleeps):
    provider = provider_for(fake_openai, sleeps)
    fake_openai.fail_next(1, status=500, method="GET", path="/v1/batches",
                          headers={"x-should-retry": "false"})
    with pytest.raises(ProviderRequestError, match="HTTP 500"):
        provider.list_batches(created_after=0)
    fake_openai.fail_next(1, status=400, method="GET", path="/v1/batches", headers={"x-should-retry": "true"})
    assert provider.list_batches(created_after=0) == []
    assert [c.status for c in fake_openai.calls_to("GET", "/v1/batches")] == [500, 400, 200]


def test_retry_after_ms_is_honoured(fake_openai, sleeps):
    provider = provider_for(fake_openai, sleeps)
    fake_openai.fail_next(1, status=429, path="/v1/batches", headers={"retry-after-ms": "2500"})
    provider.list_batches(created_after=0)
    assert sleeps == [2.5]


def test_a_retry_after_past_two_minutes_is_left_to_the_next_run_without_sleeping(fake_openai, sleeps):
    provider = provider_for(fake_openai, sleeps)
    fake_openai.fail_next(1, status=503, path="/v1/batches", retry_after="300")
    with pytest.raises(ProviderTransientError, match="asked to wait 300 s"):
        provider.list_batches(created_after=0)
    assert sleeps == []


def test_quota_exhausted_is_one_line_no_retry_even_when_told_to_retry(fake_openai, make_requests, sleeps):
    provider = provider_for(fake_openai, sleeps)
    fake_openai.fail_with_quota(3, method="POST", path="/v1/files", headers={"x-should-retry": "true"})
    with pytest.raises(ProviderAccountError) as caught:
        provider.submit("b", make_requests(1), {})
    assert str(caught.value) == (
        "OpenAI quota or billing limit reached (429 insufficient_quota): add credit or raise the limit at "
        "platform.openai.com; nothing was submitted or changed")
    assert [c.status for c in fake_openai.calls_to("POST", "/v1/files")] == [429]
    assert sleeps == []


@pytest.mark.parametrize("code", ["credit_balance_exhausted", "project_spend_limit_exceeded"])
def test_the_newer_billing_codes_are_account_errors_too(fake_openai, sleeps, code):
    provider = provider_for(fake_openai, sleeps)
    fake_openai.fail_next(1, status=429, error_type="insufficient_quota", code=code)
    with pytest.raises(ProviderAccountError, match=f"429 {code}"):
        provider.list_batches(created_after=0)


def test_an_older_quota_body_with_a_null_code_is_recognised_by_its_type(fake_openai, sleeps):
    provider = provider_for(fake_openai, sleeps)
    fake_openai.fail_next(1, status=429, error_type="insufficient_quota", code=None)
    with pytest.raises(ProviderAccountError, match="429 insufficient_quota"):
        provider.list_batches(created_after=0)


def test_a_revoked_key_is_an_account_error_whatever_the_call(fake_openai, sleeps):
    provider = provider_for(fake_openai, sleeps)
    fake_openai.set_account(key_revoked=True)
    with pytest.raises(ProviderAccountError, match=r"refused the API key \(401 invalid_api_key\)"):
        provider.retrieve("batch_x")
    assert len(fake_openai.calls) == 1 and sleeps == []


def test_a_plain_rate_limit_is_still_retried(fake_openai, sleeps):
    provider = provider_for(fake_openai, sleeps)
    fake_openai.fail_next(2, status=429, path="/v1/batches")
    assert provider.list_batches(created_after=0) == []
    assert [c.status for c in fake_openai.calls_to("GET", "/v1/batches")] == [429, 429, 200]


# -- finding 5: streamed files -------------------------------------------------------------------------
def test_output_files_are_streamed_in_chunks_and_parse_the_same(fake_openai, make_requests, sleeps,
                                                                monkeypatch):
    provider = provider_for(fake_openai, sleeps, dimensions=64)
    batch = provider.submit("b", make_requests(20, model="text-embedding-3-small", dimensions=64),
                            {"local_polls_per_stage": "0"})
    done = provider.retrieve(batch.provider_batch_id)
    whole = read_file(provider, done.output_file_id)
    monkeypatch.setattr(openai_batch, "DOWNLOAD_CHUNK_BYTES", 1000)  # lines span many chunks
    with provider.open_file(done.output_file_id) as chunks:
        pieces = list(chunks)
    assert len(pieces) > len(whole) // 1000 - 1 and b"".join(pieces) == whole
    def parsed(source):
        return [(r.custom_id, r.embedding.tolist()) for r in iter_output_records(source, dimensions=64)]

    with provider.open_file(done.output_file_id) as chunks:
        assert parsed(chunks) == parsed(whole)


# -- finding 6: files ----------------------------------------------------------------------------------
def test_two_identical_uploads_are_two_files(fake_openai, make_requests, sleeps):
    provider = provider_for(fake_openai, sleeps)
    data = make_requests(2)
    assert provider.upload("b", data) != provider.upload("b", data)


def test_200_mb_is_read_as_decimal_megabytes():
    assert MAX_BYTES_PER_BATCH_FILE == 200_000_000  # safe whether OpenAI means 10^6 or 2^20


# -- the fake's replies follow the spec ------------------------------------------------------------------
def test_a_reply_off_the_spec_is_caught(fake_openai, sleeps):
    provider = provider_for(fake_openai, sleeps)
    fake_openai.break_next_reply("/v1/batches", lambda page: {**page, "data": [{"id": 7, "status": "done"}]})
    with pytest.raises(Exception):  # noqa: B017 - the SDK may or may not choke on it; the check must
        provider.list_batches(created_after=0)
    problems = fake_openai.take_schema_problems()
    assert any("ListBatchesResponse data/0/id: 7 is not of type 'string'" in p for p in problems), problems
    assert any("'done' is not one of" in p for p in problems), problems


def test_a_test_that_receives_a_reply_off_the_spec_fails(pytester):
    pytester.makepyfile(test_inner='''
        from fake_openai import running_fake_openai

        def test_broken(tmp_path):
            with running_fake_openai(tmp_path / "fake") as fake:
                fake.break_next_reply("/v1/files", lambda reply: {**reply, "purpose": "nonsense"})
                fake.client().files.create(file=("a.jsonl", b"{}\\n"), purpose="batch")
    ''')
    result = pytester.runpytest_inprocess("-p", "fake_openai", "-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the fake OpenAI sent replies off the spec*",
                                 "*OpenAIFile purpose: 'nonsense' is not one of*"])
