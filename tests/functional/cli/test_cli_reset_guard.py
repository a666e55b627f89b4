"""`batches reset` never re-opens every batch by accident."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from embedding_ingest.cli.app import app


def test_reset_without_naming_batches_is_refused_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDDING_INGEST_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["batches", "reset", "--status", "PENDING", "--output", "json"])
    assert result.exit_code == 2
    refusal = json.loads(result.stdout)
    assert "name the batches to reset" in refusal["message"] and "--from-status, or --all" in refusal["try"]

    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert CliRunner().invoke(app, ["receipts", "import", str(empty)]).exit_code == 0  # starts the workspace
    listed = CliRunner().invoke(app, ["batches", "reset", "--status", "PENDING", "--all", "--output", "json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout)["count"] == 0
