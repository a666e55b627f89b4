"""The OpenAI key of a Lambda container: from the environment, Secrets Manager or SSM (moto's real HTTP
server), cached per container, and never written to any log, even at DEBUG."""

from __future__ import annotations

import json
import logging

import pytest
from fake_openai import API_KEY, FakeOpenAI
from lambda_fixtures import DIMENSIONS
from moto_server import unique_name
from tenacity import wait_none

from embedding_ingest.aws.exceptions import SecretNotFoundError
from embedding_ingest.aws.functions.handlers import line_poll
from embedding_ingest.aws.functions.secrets import forget_cached_keys, openai_api_key
from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.providers.openai_batch import OpenAIBatchProvider
from embedding_ingest.receipts.ids import line_item_id
from embedding_ingest.stores.dynamo_ledger import DynamoLedger
from embedding_ingest.stores.records import EmbeddingItem, EmbeddingStatus, ItemKind
from embedding_ingest.submission.submit import submit

SECRET_VALUE = "sk-from-the-vault-0123456789"


@pytest.fixture
def aws_env(moto_endpoint) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": moto_endpoint.url}


def _secret(moto_endpoint, value: str) -> str:
    client = moto_endpoint.client("secretsmanager")
    return client.create_secret(Name=unique_name("key"), SecretString=value)["ARN"]


def _parameter(moto_endpoint, value: str) -> str:
    name = f"/embedding-ingest/{unique_name('key')}/openai"
    moto_endpoint.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString")
    return name


@pytest.mark.parametrize("stored", [SECRET_VALUE, json.dumps({"OPENAI_API_KEY": SECRET_VALUE}),
                                    json.dumps({"api_key": SECRET_VALUE, "note": "rotated monthly"})])
def test_the_key_comes_from_a_secret_as_plain_text_or_json(moto_endpoint, aws_env, stored):
    arn = _secret(moto_endpoint, stored)

    assert openai_api_key({**aws_env, "OPENAI_API_KEY_SECRET_ARN": arn}) == SECRET_VALUE


def test_the_key_comes_from_an_ssm_secure_string_decrypted(moto_endpoint, aws_env):
    name = _parameter(moto_endpoint, SECRET_VALUE)

    assert openai_api_key({**aws_env, "OPENAI_API_KEY_SSM_PARAMETER": name}) == SECRET_VALUE


def test_the_environment_wins_and_nothing_configured_means_no_key(aws_env):
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:does-not-exist-AbCdEf"
    env = {**aws_env, "OPENAI_API_KEY": "sk-env", "OPENAI_API_KEY_SECRET_ARN": missing}

    assert openai_api_key(env) == "sk-env"
    assert openai_api_key(aws_env) is None


def test_two_sources_at_once_are_refused(aws_env):
    env = {**aws_env, "OPENAI_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:x",
           "OPENAI_API_KEY_SSM_PARAMETER": "/k"}

    with pytest.raises(ConfigurationError, match="only one of"):
        openai_api_key(env)


@pytest.mark.parametrize(("variable", "name"), [
    ("OPENAI_API_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"),
    ("OPENAI_API_KEY_SSM_PARAMETER", "/embedding-ingest/gone"),
])
def test_a_missing_secret_is_a_terminal_error_naming_it(aws_env, variable, name):
    with pytest.raises(SecretNotFoundError, match=name):
        openai_api_key({**aws_env, variable: name})


@pytest.mark.parametrize("stored", ["   ", json.dumps({"token": SECRET_VALUE}), '{"OPENAI_API_KEY": '])
def test_a_secret_without_a_usable_key_is_refused_without_echoing_it(moto_endpoint, aws_env, stored):
    arn = _secret(moto_endpoint, stored)

    with pytest.raises(SecretNotFoundError, match=arn) as raised:
        openai_api_key({**aws_env, "OPENAI_API_KEY_SECRET_ARN": arn})
    assert SECRET_VALUE not in str(raised.value) and raised.value.__cause__ is None


def test_the_key_is_fetched_once_per_container(moto_endpoint, aws_env):
    arn = _secret(moto_endpoint, SECRET_VALUE)
    env = {**aws_env, "OPENAI_API_KEY_SECRET_ARN": arn}
    assert openai_api_key(env) == SECRET_VALUE

    moto_endpoint.client("secretsmanager").delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)

    assert openai_api_key(env) == SECRET_VALUE  # a warm container does not ask again
    forget_cached_keys()
    with pytest.raises(SecretNotFoundError):
        openai_api_key(env)  # a cold one does


def _pending_line_batch(dynamodb_client, dynamodb_table, fake_openai: FakeOpenAI) -> dict:
    ledger = DynamoLedger(dynamodb_client, dynamodb_table)
    ledger.add_items([EmbeddingItem(item_id=line_item_id("img-key", 1, n), kind=ItemKind.LINE,
                                    image_id="img-key", receipt_number=1, line_id=n, text=f"LINE {n}",
                                    embed_text=f"LINE {n}") for n in range(3)])
    provider = OpenAIBatchProvider(fake_openai.client(), dimensions=DIMENSIONS, wait=wait_none())
    sent = submit(ItemKind.LINE, ledger, provider).batches[0]
    return {"batch_id": sent.batch_id, "openai_batch_id": sent.provider_batch_id}


def test_the_poll_function_uses_the_key_from_the_secret_and_never_logs_it(
        lambda_env, dynamodb_client, dynamodb_table, fake_openai, caplog, capfd):
    caplog.set_level(logging.DEBUG)  # botocore, openai and the HTTP client log everything at DEBUG
    event = _pending_line_batch(dynamodb_client, dynamodb_table, fake_openai)

    result = line_poll(event, None)

    # The fake answers 401 to any other key: the batch was read with the secret's key.
    assert result["action"] == "process_results" and result["embedding_count"] == 3
    counts = DynamoLedger(dynamodb_client, dynamodb_table).count_items(ItemKind.LINE)
    assert counts[EmbeddingStatus.PENDING] == 3  # SUCCESS only once a snapshot is published
    out, err = capfd.readouterr()
    logged = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(e.get("function") == "embedding-line-poll" for e in logged)  # the step's JSON logs: stdout
    assert caplog.records  # and the libraries did log at DEBUG
    for text in (out, err, caplog.text):
        assert API_KEY not in text


def test_a_poll_function_with_an_unreadable_secret_fails_loudly(lambda_env, monkeypatch, capfd):
    monkeypatch.setenv("OPENAI_API_KEY_SECRET_ARN",
                       "arn:aws:secretsmanager:us-east-1:123456789012:secret:never-created-AbCdEf")

    with pytest.raises(SecretNotFoundError, match="never-created"):
        line_poll({"batch_id": "b-1", "openai_batch_id": "batch_1"}, None)
    logged = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert any(entry.get("message") == "function setup failed" and entry["error"] == "SecretNotFoundError"
               and entry["batch_id"] == "b-1" for entry in logged)
