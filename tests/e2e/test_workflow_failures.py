"""Failures in a real run: a transient error retried by the definition's Retry, an error that never
stops caught into the named Fail state (nothing marked), and a rerun that finishes the job."""

from __future__ import annotations

import json
from collections import Counter

from e2e_history import batch_statuses, details, history, task_calls
from pipeline import make_workspace, receipts_file
from published_checks import assert_published_exactly_once
from sleep_recorder import SleepRecorder

from embedding_ingest.pipeline.policies import LOCK_WAIT_MAX_ATTEMPTS
from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.exceptions import LockNotAcquiredError
from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus, ExecutionStatus, ItemKind

LINE = ItemKind.LINE
COMPACT = "embedding-vector-compact"
LOCK_HELD = "lock 'lines' is held by another final merge"


class BusyFinalMerge:
    """The real embedding-vector-compact Lambda, whose final merge first finds the lock held
    `failures` times (None: always)."""

    def __init__(self, failures: int | None) -> None:
        self.failures_left = failures
        self.raised = 0

    def __call__(self, event: dict, ctx) -> dict:
        if event.get("operation") == "final_merge" and self.failures_left != 0:
            self.raised += 1
            if self.failures_left is not None:
                self.failures_left -= 1
            raise LockNotAcquiredError(LOCK_HELD)
        return HANDLERS[COMPACT](event, ctx)


def submitted_workspace(tmp_path):
    ws = make_workspace(tmp_path)
    ws.import_receipts(receipts_file(tmp_path, 2, start=40))
    report = ws.submit(LINE, max_items_per_batch=10)
    return ws, report, ws.item_ids(LINE, EmbeddingStatus.PENDING)


def test_a_step_failing_twice_with_a_transient_error_is_retried_and_the_run_succeeds(tmp_path):
    ws, _, submitted = submitted_workspace(tmp_path)
    busy, sleep = BusyFinalMerge(failures=2), SleepRecorder()

    record = ws.run(LINE, overrides={COMPACT: busy}, sleep=sleep)

    assert record.status is ExecutionStatus.SUCCEEDED, (record.error, record.cause)
    events = history(ws, record)
    calls = task_calls(events, "FinalMerge")
    assert [phase for phase, _ in calls] == ["Scheduled", "Started", "Failed"] * 2 + ["Scheduled", "Started",
                                                                                     "Succeeded"]
    failed = [d for phase, d in calls if phase == "Failed"]
    assert [f["error"] for f in failed] == ["LockNotAcquiredError"] * 2
    assert all(LOCK_HELD in f["cause"] for f in failed)
    scheduled = [d for phase, d in calls if phase == "Scheduled"][0]
    # The optimized integration records resource "invoke" of type "lambda"; the function is a parameter.
    assert (scheduled["resourceType"], scheduled["resource"]) == ("lambda", "invoke")
    assert COMPACT in json.loads(scheduled["parameters"])["FunctionName"]
    assert len(sleep.delays) == 2  # one backoff wait before each retry
    assert_published_exactly_once(ws, LINE, submitted)


def test_a_step_that_always_fails_ends_in_its_fail_state_marks_nothing_and_a_rerun_finishes(tmp_path):
    ws, report, submitted = submitted_workspace(tmp_path)
    busy = BusyFinalMerge(failures=None)

    failed_run = ws.run(LINE, overrides={COMPACT: busy})

    assert failed_run.status is ExecutionStatus.FAILED
    assert failed_run.error == "LockNotAcquiredError" and LOCK_HELD in failed_run.cause
    assert busy.raised == 1 + LOCK_WAIT_MAX_ATTEMPTS  # retries are bounded, then Catch takes over
    events = history(ws, failed_run)
    failures = [d["error"] for phase, d in task_calls(events, "FinalMerge") if phase == "Failed"]
    assert failures == ["LockNotAcquiredError"] * (1 + LOCK_WAIT_MAX_ATTEMPTS)
    fail_state = [e for e in events if e["type"] == "FailStateEntered"]
    assert [details(e)["name"] for e in fail_state] == ["FinalMergeFailed"]
    caught = json.loads(details(fail_state[0])["input"])["error"]
    assert caught["Error"] == "LockNotAcquiredError" and LOCK_HELD in caught["Cause"]
    assert events[-1]["type"] == "ExecutionFailed"
    assert "MarkBatchesComplete" not in {details(e).get("name") for e in events}
    assert ws.published_ids(LINE) == []
    assert BatchStatus.COMPLETED not in batch_statuses(ws, LINE)
    assert ws.statuses(LINE) == Counter({"PENDING": len(submitted)})

    rerun = ws.run(LINE)

    assert rerun.status is ExecutionStatus.SUCCEEDED, (rerun.error, rerun.cause)
    assert_published_exactly_once(ws, LINE, submitted)
    assert ws.output(rerun)["mark_complete_result"]["batches_marked"] == len(report.batches)
