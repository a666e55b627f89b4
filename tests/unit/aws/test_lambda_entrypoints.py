"""Lambda entrypoints on the embedded backends (local objects, SQLite, local provider): settings that
fit Lambda's read-only file system, one context per container, JSON logs, and errors raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from package_logging import restored_package_logging

from embedding_ingest.aws.exceptions import UnknownLambdaFunctionError
from embedding_ingest.aws.functions.container import (
    LAMBDA_HOME,
    forget_step_contexts,
    lambda_settings,
    step_context_for,
)
from embedding_ingest.aws.functions.handlers import ENTRYPOINTS, line_poll, list_pending, split_chunks
from embedding_ingest.config import Settings
from embedding_ingest.exceptions import ConfigurationError, TerminalError
from embedding_ingest.providers.local import LocalBatchProvider
from embedding_ingest.steps.exceptions import StepInputError

CLOUD_VARIABLES = ("CHROMADB_BUCKET", "DYNAMODB_TABLE_NAME", "CHROMA_ROOT", "EMBEDDING_INGEST_HOME",
                   "AWS_LAMBDA_FUNCTION_NAME", "EMBEDDING_PROVIDER", "OPENAI_API_KEY")


class LambdaContext:
    aws_request_id = "req-0001"


@pytest.fixture(autouse=True)
def local_container(monkeypatch, tmp_path):
    for name in CLOUD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMBEDDING_INGEST_HOME", str(tmp_path / "home"))
    forget_step_contexts()
    with restored_package_logging():
        yield
    forget_step_contexts()


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_inside_lambda_the_workspace_and_version_cache_default_to_tmp(monkeypatch):
    monkeypatch.delenv("EMBEDDING_INGEST_HOME")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "embedding-list-pending-dev")
    monkeypatch.setenv("HOME", "/home/sbx_user1051")  # Settings would otherwise pick HOME up as `home`

    settings = lambda_settings()

    assert settings.home == LAMBDA_HOME and str(settings.cache_dir).startswith("/tmp/")


def test_an_efs_mount_keeps_the_version_cache_and_an_explicit_home_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "embedding-vector-compact-dev")
    monkeypatch.setenv("CHROMA_ROOT", "/mnt/efs/chromadb")

    settings = lambda_settings()

    assert settings.cache_dir == Path("/mnt/efs/chromadb") and settings.home == tmp_path / "home"


def test_outside_lambda_settings_are_left_as_configured(monkeypatch):
    monkeypatch.delenv("EMBEDDING_INGEST_HOME")

    assert lambda_settings() == Settings()


def test_an_entrypoint_runs_its_step_and_logs_json_with_the_execution(capsys):
    event = {"batch_type": "line", "execution_id": "run-7", "max_batches": None}

    result = list_pending(event, LambdaContext())

    assert result["total_batches"] == 0 and result["execution_id"] == "run-7"
    logged = _json_lines(capsys.readouterr().out)
    started = [e for e in logged if e.get("message") == "step started"]
    assert len(started) == 1  # one line per record: nothing printed twice through the root logger
    assert started[0]["function"] == "embedding-list-pending"
    assert started[0]["execution"] == "run-7" and started[0]["request_id"] == "req-0001"
    assert (started[0]["level"], started[0]["service"]) == ("INFO", "embedding-ingest")  # Powertools' keys
    # the invocation's metrics, as one CloudWatch embedded-metric line at its end
    (emf,) = [e for e in logged if "_aws" in e]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert (directive["Namespace"], directive["Dimensions"]) == ("EmbeddingIngest", [["workflow", "service"]])
    assert (emf["BatchesActive"], emf["workflow"]) == ([0.0], "line")


def test_a_bad_event_is_raised_with_its_class_name_and_logged_with_the_batch(capsys):
    with pytest.raises(StepInputError, match="poll_results") as raised:
        split_chunks({"batch_id": "run-8", "poll_results": "not a list"}, LambdaContext())

    assert isinstance(raised.value, TerminalError)  # Step Functions must not retry it
    failed = [e for e in _json_lines(capsys.readouterr().out) if e.get("message") == "step failed"]
    assert [(e["error"], e["batch_id"], e["function"]) for e in failed] == [
        ("StepInputError", "run-8", "embedding-split-chunks")]


def test_the_context_is_built_once_per_container_and_rebuilt_for_other_settings(monkeypatch, tmp_path):
    first = step_context_for("embedding-split-chunks")
    assert step_context_for("embedding-split-chunks") is first

    monkeypatch.setenv("EMBEDDING_INGEST_HOME", str(tmp_path / "other-home"))

    assert step_context_for("embedding-split-chunks") is not first


def test_only_poll_functions_get_a_provider(tmp_path):
    assert isinstance(step_context_for("embedding-line-poll").provider, LocalBatchProvider)

    merge_provider = step_context_for("embedding-vector-compact").provider
    with pytest.raises(ConfigurationError, match="embedding-vector-compact has no embedding provider"):
        merge_provider.retrieve("batch_1")


def test_a_poll_function_with_the_openai_provider_and_no_key_source_says_so(monkeypatch, capsys):
    monkeypatch.setenv("EMBEDDING_PROVIDER", "openai")

    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        line_poll({"batch_id": "b-1", "openai_batch_id": "batch_1"}, LambdaContext())
    assert any(e.get("message") == "function setup failed" for e in _json_lines(capsys.readouterr().out))


def test_every_function_has_an_entrypoint_and_unknown_names_are_refused():
    assert len(ENTRYPOINTS) == 7
    with pytest.raises(UnknownLambdaFunctionError, match="embedding-nope"):
        step_context_for("embedding-nope")
