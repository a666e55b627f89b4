"""Settings read exactly the documented variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from embedding_ingest.config import Settings, StorageMode


def test_documented_variables_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBEDDING_INGEST_HOME", str(tmp_path))
    monkeypatch.setenv("CHROMADB_BUCKET", "vectors")
    monkeypatch.setenv("DYNAMODB_TABLE_NAME", "receipts-dev")
    monkeypatch.setenv("CHROMADB_STORAGE_MODE", "efs")
    monkeypatch.setenv("CHROMA_ROOT", "/mnt/efs/chromadb")
    settings = Settings()
    assert settings.home == tmp_path
    assert settings.uses_aws_objects and settings.chromadb_bucket == "vectors"
    assert settings.uses_aws_ledger and settings.dynamodb_table_name == "receipts-dev"
    assert settings.chromadb_storage_mode is StorageMode.EFS
    assert settings.cache_dir == Path("/mnt/efs/chromadb")


def test_unrelated_variables_named_like_fields_are_ignored(monkeypatch):
    """$HOME must not become the workspace, nor $PROVIDER the provider."""
    for name in ("EMBEDDING_INGEST_HOME", "EMBEDDING_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/somewhere/else")
    monkeypatch.setenv("PROVIDER", "openai")
    settings = Settings()
    assert settings.home == Path(".embedding-ingest")
    assert settings.provider == "local"


def test_settings_survive_a_json_round_trip_for_worker_processes(tmp_path):
    settings = Settings(EMBEDDING_INGEST_HOME=str(tmp_path), EMBEDDING_DIMENSIONS=64)
    again = Settings.model_validate_json(settings.model_dump_json())
    assert again.home == tmp_path and again.embedding_dimensions == 64


def test_a_per_execution_cap_that_would_overflow_state_payloads_is_refused():
    assert Settings(MAX_BATCHES_PER_EXECUTION=250).max_batches_per_execution == 250
    with pytest.raises(ValidationError, match="MAX_BATCHES_PER_EXECUTION"):
        Settings(MAX_BATCHES_PER_EXECUTION=1000)
