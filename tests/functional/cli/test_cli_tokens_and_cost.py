"""submit --dry-run, budgets and the cost columns of status, through the real command line."""

from __future__ import annotations

import pytest
from pipeline import receipts_file


@pytest.mark.slow
def test_dry_run_prices_the_plan_changes_nothing_and_status_shows_billed_tokens_after_a_run(cli, tmp_path):
    imported = cli.json("receipts", "import", str(receipts_file(tmp_path, 2)))
    assert imported["tokens"] > 0 and imported["truncated_items"] == 0

    plan = cli.json("submit", "line", "--dry-run", "--max-items-per-batch", "40",
                    OPENAI_BATCH_PRICES='{"text-embedding-3-small": 0.02}')
    assert plan["dry_run"] is True and plan["items_submitted"] == imported["lines_added"]
    assert plan["tokens_submitted"] == sum(b["tokens"] for b in plan["batches"]) > 0
    assert plan["estimated_cost_usd"] == pytest.approx(plan["tokens_submitted"] * 0.02 / 1e6, abs=1e-6)
    assert cli.json("status")["items"]["line"]["NONE"] == imported["lines_added"]  # nothing claimed
    assert cli.json("batches", "list")["count"] == 0

    sent = cli.json("submit", "line", "--max-items-per-batch", "40")
    assert [b["tokens"] for b in sent["batches"]] == [b["tokens"] for b in plan["batches"]]
    cli.json("start-execution", "line", "--until-idle", "--interval", "0")
    usage = {row["kind"]: row for row in cli.json("status")["usage"]}
    assert usage["line"]["tokens_submitted"] == usage["line"]["tokens_billed"] == plan["tokens_submitted"]
    assert usage["line"]["cost_usd"] == pytest.approx(plan["tokens_submitted"] * 0.01 / 1e6)
    assert usage["word"]["tokens_submitted"] == 0


def test_items_beyond_the_enqueued_token_budget_wait_and_say_so(cli, tmp_path):
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))
    first = cli.json("submit", "word", "--max-items-per-batch", "20", OPENAI_ENQUEUED_TOKEN_LIMIT="300")
    assert first["items_waiting_for_budget"] > 0
    assert first["budget_exhausted"] == "OPENAI_ENQUEUED_TOKEN_LIMIT"
    assert first["tokens_submitted"] <= 300
    text = cli.run("submit", "word", OPENAI_ENQUEUED_TOKEN_LIMIT="300").stdout
    assert "wait for budget" in text and "OPENAI_ENQUEUED_TOKEN_LIMIT" in text


def test_submit_says_in_plain_words_what_the_plan_costs_and_that_nothing_is_waiting(cli, tmp_path):
    """The dry run's price sentence and the idle submit's line, at 80 columns: whole sentences, and no
    line ending in the spaces rich's word wrapping leaves."""
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))
    plan = cli.run("submit", "line", "--dry-run", COLUMNS="80")
    lines = (plan.stdout + plan.stderr).splitlines()
    assert len(lines) > 3 and [line for line in lines if line != line.rstrip()] == []
    assert ("the batches use local-hash-ngram-v1, which costs nothing here (the price shown is OpenAI's, for "
            "reference)") in " ".join(plan.stdout.split())

    cli.json("submit", "line")
    idle = cli.run("submit", "line", COLUMNS="80")
    assert idle.stdout == "nothing to submit: no line is waiting\n"
