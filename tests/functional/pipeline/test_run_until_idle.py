"""run_until_idle on a real workspace (local provider needing several polls per batch, real Chroma,
the real definitions on the local engine in worker processes): it runs executions until nothing of the
kind is active, honours max_runs and the interval, and every execution carries a summary."""

from __future__ import annotations

import pytest
from pipeline import make_workspace, receipts_file

from embedding_ingest.pipeline.engine_store import describe_execution
from embedding_ingest.pipeline.run import run_until_idle
from embedding_ingest.stores.records import ACTIVE_BATCH_STATUSES, ItemKind


@pytest.fixture
def submitted(tmp_path):
    """3 receipts' lines in 3 batches, each needing 4 polls (validating, in_progress, finalizing)."""
    ws = make_workspace(tmp_path, polls_per_stage=1)
    imported = ws.import_receipts(receipts_file(tmp_path, 3))
    report = ws.submit(ItemKind.LINE, max_items_per_batch=60)
    assert len(report.batches) == 3
    return ws, imported.lines_added


def test_runs_until_no_batch_is_active_and_sums_up_what_was_published(submitted):
    ws, lines = submitted
    sleeps: list[float] = []

    idle = run_until_idle(ItemKind.LINE, ws.settings, interval=0.25, sleep=sleeps.append)

    runs = idle.executions
    assert len(runs) >= 2 and all(run["status"] == "SUCCEEDED" for run in runs)
    assert sleeps == [0.25] * (len(runs) - 1)
    first, last = runs[0]["summary"], runs[-1]["summary"]
    assert (first["published"], first["batches_listed"], first["batches_still_active"]) == (False, 3, 3)
    # the loop says what it does next, not "run again later, or use --until-idle" (the single run's)
    assert first["message"] == ("published nothing: 3 batches still in progress at the provider; "
                                "polling again in 0.25 s")
    assert first["next"] == "embedding-ingest start-execution line --until-idle"
    assert sum(first["batches_polled"].values()) == 3 and "completed" not in first["batches_polled"]
    assert (last["published"], last["embeddings_published"]) == (True, lines)
    assert last["batches_marked_complete"] == 3
    assert last["batches_polled"] == {"completed": 3} and last["deltas_written"] == 3
    assert last["published_version"] == ws.ledger.get_published("lines").version
    assert idle.summary["stopped_because"] == "idle" and idle.summary["next"] is None
    assert (idle.summary["executions"], idle.summary["embeddings_published"]) == (len(runs), lines)
    assert idle.summary["published_versions"] == [last["published_version"]]
    assert not ws.ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES)
    assert ws.statuses(ItemKind.LINE) == {"SUCCESS": lines}
    # Each returned body is the execution as DescribeExecution shows it, plus its summary.
    for run in runs:
        stored = describe_execution(ws.ledger.get_execution(run["name"]))
        assert {k: v for k, v in run.items() if k != "summary"} == stored


def test_max_runs_stops_early_and_says_what_is_left(submitted):
    ws, _ = submitted

    idle = run_until_idle(ItemKind.LINE, ws.settings, max_runs=1)

    assert len(idle.executions) == 1
    assert idle.summary["stopped_because"] == "max_runs" and idle.summary["batches_still_active"] == 3
    assert idle.summary["message"] == ("1 execution (--max-runs reached): published nothing; "
                                       "3 batches still active")
    assert idle.summary["next"] == "embedding-ingest start-execution line --until-idle"


def test_with_nothing_submitted_one_execution_says_there_is_nothing_to_poll(tmp_path):
    ws = make_workspace(tmp_path)

    idle = run_until_idle(ItemKind.WORD, ws.settings)

    assert [run["status"] for run in idle.executions] == ["SUCCEEDED"]
    summary = idle.executions[0]["summary"]
    # nothing waits to be submitted either (an empty workspace), so no "submit" hint
    assert summary["message"] == ("published nothing: no active word batches to poll, and no word is "
                                  "waiting to be submitted")
    assert summary["next"] is None
    assert idle.summary["stopped_because"] == "idle"


class FailingBackend:
    """An ExecutionBackend whose every execution fails at once (as a timed-out AWS run reports it)."""

    name = "aws"
    shares_ledger = False

    def __init__(self) -> None:
        self.names: list[str] = []

    def start(self, workflow: str, name: str, *, wait: bool = True, execution_input: str = "{}") -> dict:
        self.names.append(name)
        return {"name": name, "status": "FAILED", "error": "States.Timeout", "cause": "took too long",
                "executionArn": f"arn:aws:states:us-east-1:1:execution:{workflow}-ingest:{name}",
                "stateMachineArn": f"arn:aws:states:us-east-1:1:stateMachine:{workflow}-ingest"}

    def history(self, name_or_arn: str, workflow: str) -> list[dict]:
        return []


def test_a_given_backend_runs_every_execution_and_a_failure_stops_the_loop(submitted):
    ws, _ = submitted
    backend = FailingBackend()
    names = backend.names

    idle = run_until_idle(ItemKind.LINE, ws.settings, backend=backend)

    assert [run["name"] for run in idle.executions] == names and len(names) == 1
    assert idle.summary["stopped_because"] == "failed" and idle.summary["failed"] == 1
    assert idle.executions[0]["summary"]["message"] == "failed: States.Timeout"
    assert idle.summary["next"] == f"embedding-ingest get-execution-history {names[0]} --failed-only"


def test_max_runs_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="max_runs must be at least 1"):
        run_until_idle(ItemKind.LINE, make_workspace(tmp_path).settings, max_runs=0)
