"""Every client a function builds gives up within that function's timeout: with the settings the
template gives each function, the worst case of one call (every attempt timing out, every wait at its
longest) fits its Timeout, so a hung call fails by name (a retryable error the state machine sees)
instead of Lambda killing the function mid-call (Lambda.Unknown)."""

from __future__ import annotations

import pytest
from botocore.retries.standard import ExponentialBackoff

from embedding_ingest.aws.deploy.template import build_template
from embedding_ingest.aws.function_table import ALL_FUNCTIONS
from embedding_ingest.backends import aws_client, build_provider
from embedding_ingest.config import Settings
from embedding_ingest.providers.openai_batch import openai_call_budget
from embedding_ingest.stores.aws_clients import (
    BACKOFF_CAP_SECONDS,
    RETRY_AFTER_EXTRA_SECONDS,
    call_budget,
)


@pytest.fixture(scope="module")
def template() -> dict:
    return build_template()


def _settings_of(template: dict, logical_id: str) -> Settings:
    """The function's Settings from its template environment (values CloudFormation resolves, such as
    the table's name, are left out: they size nothing)."""
    env = template["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
    return Settings(**{name: value for name, value in env.items() if isinstance(value, str)},
                    AWS_REGION="us-east-1", OPENAI_API_KEY="sk-not-used")


def test_the_worst_case_follows_botocores_own_backoff():
    assert (ExponentialBackoff._MAX_BACKOFF, ExponentialBackoff._RETRY_AFTER_MAX_ADDITIONAL) == (
        BACKOFF_CAP_SECONDS, RETRY_AFTER_EXTRA_SECONDS)


@pytest.mark.parametrize("function", ALL_FUNCTIONS, ids=lambda f: f.name)
def test_every_client_of_a_function_gives_up_within_its_timeout(template, function):
    timeout = template["Resources"][function.logical_id]["Properties"]["Timeout"]
    settings = _settings_of(template, function.logical_id)
    assert settings.call_budget_seconds is not None, "the template sets CALL_BUDGET_SECONDS"

    aws = call_budget(settings.call_budget_seconds)
    assert aws.worst_case_seconds <= settings.call_budget_seconds <= timeout
    assert aws.attempts >= 2  # one retry at least, for a throttled or dropped request
    for service in ("s3", "dynamodb", "stepfunctions", "secretsmanager"):  # what the functions call
        config = aws_client(service, settings).meta.config
        assert (config.retries["total_max_attempts"], config.connect_timeout, config.read_timeout) == (
            aws.attempts, aws.connect_timeout, aws.read_timeout)

    if function.needs_provider:
        openai = openai_call_budget(settings.call_budget_seconds)
        assert openai.worst_case_seconds <= timeout
        provider = build_provider(settings.model_copy(update={"provider": "openai"}))
        assert provider.max_attempts == openai.attempts
        assert provider._client.timeout == openai.request_timeout
        assert provider._wait.cap == openai.max_wait


def test_without_a_budget_calls_keep_their_patient_defaults():
    """The CLI and local runs have no function timeout: botocore's timeouts, 8 attempts; the SDK's 600 s."""
    assert call_budget(None).attempts == 8 and call_budget(None).read_timeout == 60
    assert openai_call_budget(None).request_timeout == 600 and openai_call_budget(None).attempts == 5
