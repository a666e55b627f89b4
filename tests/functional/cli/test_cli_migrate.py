"""`migrate` as a user runs it (issue 19, finding 8): text-embedding-3-small/16 published through the real
SDK against the fake OpenAI, the configuration changed to text-embedding-3-large/32; submit refuses in one
line, `migrate --dry-run` prices the re-embedding, `migrate` plus the usual commands switch, and
`migrate --rollback` switches back. Every command answers --output json and ends with a `next:` hint."""

from __future__ import annotations

import pytest
from cli_runner import Cli
from fake_openai import API_KEY, running_fake_openai
from pipeline import receipts_file


@pytest.fixture
def cli(tmp_path):
    with running_fake_openai(tmp_path / "fake-openai") as fake:
        fake.set_faults(polls_per_stage=0)
        yield Cli(home=tmp_path / "home", settings={
            "EMBEDDING_PROVIDER": "openai", "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake.base_url,
            "EMBEDDING_MODEL": "text-embedding-3-small", "EMBEDDING_DIMENSIONS": "16"})


LARGE = {"EMBEDDING_MODEL": "text-embedding-3-large", "EMBEDDING_DIMENSIONS": "32"}


def test_a_model_change_is_refused_then_migrated_then_rolled_back(cli, tmp_path):
    imported = cli.json("receipts", "import", str(receipts_file(tmp_path, 2)))
    cli.json("submit", "line")
    cli.json("start-execution", "line", "--until-idle")
    lines = imported["lines_added"]

    refused = cli.run("submit", "line", code=2, **LARGE)
    (message,) = refused.stderr.strip().splitlines()
    assert "line: configured text-embedding-3-large/32 but published lines version" in message
    assert "is text-embedding-3-small/16 (migrate to the new one" in message
    assert message.endswith("; try: embedding-ingest migrate line --dry-run")

    plan = cli.json("migrate", "line", "--dry-run", **LARGE)
    assert (plan["from_model"], plan["from_dimensions"], plan["to_model"], plan["to_dimensions"]) == (
        "text-embedding-3-small", 16, "text-embedding-3-large", 32)
    assert plan["items_to_embed"] == lines and plan["tokens"] > 0
    assert plan["estimated_cost_usd"] == pytest.approx(plan["tokens"] * 0.065 / 1_000_000, abs=1e-6)
    assert cli.json("status")["migrations"] == {}  # a dry run changes nothing
    assert "next: embedding-ingest migrate line --model text-embedding-3-large --dimensions 32" in cli.run(
        "migrate", "line", "--dry-run", **LARGE).stderr

    started = cli.run("migrate", "line", **LARGE)
    hint = "next: EMBEDDING_MODEL=text-embedding-3-large EMBEDDING_DIMENSIONS=32 embedding-ingest submit line"
    assert hint in started.stderr
    status = cli.json("status")
    assert status["migrations"]["line"]["state"] == "BUILDING"
    assert status["items"]["line"]["NONE"] == lines
    assert "set EMBEDDING_MODEL=text-embedding-3-large EMBEDDING_DIMENSIONS=32" in cli.run(  # the old config
        "submit", "line", code=2).stderr.strip().splitlines()[-1]                            # is refused now
    assert cli.json("query", "line", "TOTAL", "-n", "1")["model"] == "text-embedding-3-small"

    cli.json("submit", "line", **LARGE)
    cli.json("start-execution", "line", "--until-idle", **LARGE)
    status = cli.json("status")
    assert status["migrations"]["line"]["state"] == "SWITCHED"
    assert status["items"]["line"]["SUCCESS"] == lines
    assert cli.json("query", "line", "TOTAL", "-n", "1")["model"] == "text-embedding-3-large"
    assert cli.json("migrate", "line", **LARGE, code=2)["error"] == "MigrationRefusedError"  # done already

    undo = cli.json("migrate", "line", "--rollback", "--dry-run", **LARGE)
    assert (undo["items_to_embed"], undo["model"]) == (0, "text-embedding-3-small/16")
    rolled = cli.run("migrate", "line", "--rollback", **LARGE)
    assert "next: EMBEDDING_MODEL=text-embedding-3-small EMBEDDING_DIMENSIONS=16" in rolled.stderr
    assert cli.json("query", "line", "TOTAL", "-n", "1")["model"] == "text-embedding-3-small"
    assert cli.json("status")["migrations"]["line"]["state"] == "ROLLED_BACK"
    cli.json("submit", "line")  # the old configuration is the published one again


def test_items_requeue_needs_to_be_told_which_and_says_what_next(cli, tmp_path):
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))
    refused = cli.json("items", "requeue", "line", code=2)
    assert (refused["error"], refused["try"]) == ("InvalidInputError",
                                                  "embedding-ingest items requeue line --failed")
    assert cli.json("items", "requeue", "line", "--failed") == {"kind": "line", "requeued": 0}
