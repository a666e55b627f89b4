"""Issue 5's conformance suite: each scenario runs twice from identical starting states (two workspaces
built the same way; ids are deterministic) - once on moto's Step Functions interpreter, once on our
LocalEngine - with the same definition from the builder and the same real step handlers. Both runs
must end the same way, with the same output, the same states entered, the same ledger state and the
same published snapshot records. Each scenario also checks that it took the path it is about."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conformance_compare import (
    Normaliser,
    all_entered,
    event_types,
    failed_functions,
    ledger_state,
    local_outcome,
    moto_outcome,
    published_records,
    top_level_data,
    top_level_path,
)
from conformance_moto import MotoStepFunctions
from pipeline import Handler, Workspace, make_workspace, receipts_file

from embedding_ingest.pipeline import policies
from embedding_ingest.pipeline.definitions import POLL, VECTOR_COMPACT, build_definition
from embedding_ingest.pipeline.state_names import LINE_NAMES, WORD_NAMES, failed_state, names_for
from embedding_ingest.snapshots.exceptions import SnapshotCountMismatchError
from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.exceptions import CorruptObjectError, LockNotAcquiredError
from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus, ItemKind

LINE, WORD = ItemKind.LINE, ItemKind.WORD


class FailingOperation:
    """The real embedding-vector-compact Lambda, except that `operation` raises `error()` on its first
    `times` calls (None: every call) - a transient fault that clears, or a terminal one."""

    def __init__(self, operation: str, error: Callable[[], Exception], times: int | None = None) -> None:
        self.operation, self.error, self.times = operation, error, times
        self.failures = 0

    def __call__(self, event: dict, ctx) -> dict:
        if event.get("operation") == self.operation and (self.times is None or self.failures < self.times):
            self.failures += 1
            raise self.error()
        return HANDLERS[VECTOR_COMPACT](event, ctx)


class FailingPoll:
    """The real poll Lambda, except that the batch at `batch_index` cannot be polled (a terminal error)."""

    def __init__(self, kind: ItemKind, batch_index: int) -> None:
        self.function, self.batch_index = POLL[kind.value], batch_index

    def __call__(self, event: dict, ctx) -> dict:
        if event.get("batch_index") == self.batch_index:
            raise CorruptObjectError(f"batch-output-{self.batch_index}.jsonl", "truncated JSON line 3")
        return HANDLERS[self.function](event, ctx)


@dataclass(frozen=True)
class Scenario:
    id: str
    kind: ItemKind
    receipts: tuple[int, int]  # (first receipt, how many) of the SROIE test file
    max_items_per_batch: int
    faults: Callable[[], dict[str, Handler]] = dict  # fresh handler overrides for each side
    setup: Callable[[pytest.MonkeyPatch], None] = field(default=lambda _patch: None)


def _scaled_down_offload_limits(patch: pytest.MonkeyPatch) -> None:
    # The real limits (150 KB of chunks, 100 KB of poll results) need ~750 / ~250 batches; 4 KiB sends
    # this scenario's 54 batches through the same offload code. The manifest threshold (> 50) is real.
    patch.setattr("embedding_ingest.steps.chunks.INLINE_PAYLOAD_LIMIT", 4 * 1024)
    patch.setattr("embedding_ingest.steps.groups.POLL_RESULTS_INLINE_LIMIT", 4 * 1024)


def _one_second_retries(patch: pytest.MonkeyPatch) -> None:
    # Moto really sleeps between retries; the builder's policy with 1 s intervals keeps it short.
    patch.setattr(policies, "RETRY_INTERVAL_SECONDS", 1)
    patch.setattr(policies, "LOCK_WAIT_INTERVAL_SECONDS", 1)


SMALL_LINE = Scenario("small-line", LINE, (0, 2), 50)  # 92 lines, 2 batches, 1 chunk
SMALL_WORD = Scenario("small-word", WORD, (0, 1), 40)  # 85 words, 3 batches, 1 chunk
GROUPED = Scenario("grouped-word", WORD, (0, 1), 2)  # 43 batches -> 5 chunks (> 4): group merge
OFFLOADED = Scenario("offloaded-line", LINE, (2, 1), 1, setup=_scaled_down_offload_limits)  # 54 batches
RETRY = Scenario("retry-word", WORD, (0, 1), 40, setup=_one_second_retries, faults=lambda: {
    VECTOR_COMPACT: FailingOperation("final_merge", lambda: LockNotAcquiredError("lock words held"), 2)})
CATCH_TASK = Scenario("catch-final-merge-line", LINE, (0, 1), 20, faults=lambda: {
    VECTOR_COMPACT: FailingOperation("final_merge",
                                     lambda: SnapshotCountMismatchError("publish of lines", 44, 43))})
CATCH_MAP = Scenario("catch-process-chunk-word", WORD, (0, 1), 40, faults=lambda: {
    VECTOR_COMPACT: FailingOperation("process_chunk",
                                     lambda: CorruptObjectError("words/delta/x/", "bad archive"))})
POLL_CAUGHT = Scenario("poll-caught-line", LINE, (0, 1), 20,
                       faults=lambda: {POLL["line"]: FailingPoll(LINE, 1)})


@dataclass
class Compared:
    scenario: Scenario
    definition: dict
    moto: Workspace
    local: Workspace
    moto_normalised: dict
    local_normalised: dict
    moto_path: list[str]
    local_path: list[str]
    moto_failures: int
    local_failures: int


def run_on_both(scenario: Scenario, tmp_path: Path, moto_sfn: MotoStepFunctions,
                monkeypatch: pytest.MonkeyPatch) -> Compared:
    """Run `scenario` on moto and on the LocalEngine and assert every engine-independent result agrees."""
    scenario.setup(monkeypatch)
    start, count = scenario.receipts
    receipts = receipts_file(tmp_path, count, start=start)
    sides: dict[str, Workspace] = {}
    for side in ("moto", "local"):
        workspace = make_workspace(tmp_path / side)
        workspace.import_receipts(receipts)
        workspace.submit(scenario.kind, max_items_per_batch=scenario.max_items_per_batch)
        sides[side] = workspace
    # One definition for both (moto's Lambda ARNs; the local invoker uses the ARN's function name).
    definition = build_definition(scenario.kind.value, moto_sfn.resource_for)
    name = f"conformance-{scenario.id}"

    on_moto = moto_outcome(moto_sfn.run(definition, name, sides["moto"].handlers(scenario.faults())))
    record = sides["local"].run(scenario.kind, name=name, overrides=scenario.faults(), definition=definition)
    on_local = local_outcome(sides["local"], record)

    moto_normaliser, local_normaliser = Normaliser(sides["moto"]), Normaliser(sides["local"])
    moto_normalised, local_normalised = moto_normaliser.outcome(on_moto), local_normaliser.outcome(on_local)
    assert local_normalised == moto_normalised
    moto_path, local_path = top_level_path(on_moto, definition), top_level_path(on_local, definition)
    assert local_path == moto_path
    assert (top_level_data(on_local, definition, local_normaliser)
            == top_level_data(on_moto, definition, moto_normaliser))
    assert all_entered(on_local) == all_entered(on_moto)
    assert event_types(on_local) == event_types(on_moto)
    assert ledger_state(sides["local"], scenario.kind) == ledger_state(sides["moto"], scenario.kind)
    assert published_records(sides["local"], scenario.kind) == published_records(sides["moto"], scenario.kind)
    return Compared(scenario, definition, sides["moto"], sides["local"], moto_normalised, local_normalised,
                    moto_path, local_path, failed_functions(on_moto), failed_functions(on_local))


def assert_all_published(compared: Compared) -> None:
    kind = compared.scenario.kind
    for workspace in (compared.moto, compared.local):
        assert sorted(workspace.published_ids(kind)) == sorted(workspace.item_ids(kind))
        assert dict(workspace.statuses(kind)) == {str(EmbeddingStatus.SUCCESS): len(workspace.item_ids(kind))}


@pytest.mark.parametrize("scenario", [SMALL_LINE, SMALL_WORD], ids=lambda s: s.id)
def test_small_run_merges_its_chunk_directly_on_both_engines(scenario, tmp_path, moto_sfn, monkeypatch):
    compared = run_on_both(scenario, tmp_path, moto_sfn, monkeypatch)

    names = names_for(scenario.kind.value)
    assert compared.moto_normalised["status"] == "SUCCEEDED"
    assert names.prepare_final in compared.moto_path and names.create_groups not in compared.moto_path
    assert_all_published(compared)


def test_more_than_four_chunks_are_merged_in_groups_on_both_engines(tmp_path, moto_sfn, monkeypatch):
    compared = run_on_both(GROUPED, tmp_path, moto_sfn, monkeypatch)

    output = compared.moto_normalised["output"]
    assert compared.moto_normalised["status"] == "SUCCEEDED"
    assert {WORD_NAMES.create_groups, WORD_NAMES.merge_groups} <= set(compared.moto_path)
    assert len(output["chunk_results"]) == 1  # the final merge took the one merged group of 5 chunks
    assert output["final_merge_result"]["total_embeddings"] == len(compared.moto.item_ids(WORD))
    assert_all_published(compared)


def test_manifest_chunks_and_poll_results_offloaded_on_both_engines(tmp_path, moto_sfn, monkeypatch):
    compared = run_on_both(OFFLOADED, tmp_path, moto_sfn, monkeypatch)

    output = compared.moto_normalised["output"]
    assert compared.moto_normalised["status"] == "SUCCEEDED"
    assert {LINE_NAMES.load_chunks, LINE_NAMES.load_groups} <= set(compared.moto_path)
    assert output["poll_results_s3_key"] == "chunk_groups/conformance-offloaded-line/poll_results.json"
    assert output["mark_complete_result"]["batches_marked"] == 54
    assert_all_published(compared)


def test_transient_failures_are_retried_to_success_on_both_engines(tmp_path, moto_sfn, monkeypatch):
    compared = run_on_both(RETRY, tmp_path, moto_sfn, monkeypatch)

    assert compared.moto_normalised["status"] == "SUCCEEDED"
    assert compared.moto_failures == compared.local_failures == 2
    assert_all_published(compared)


@pytest.mark.parametrize("scenario, failing_state, error", [
    (CATCH_TASK, LINE_NAMES.final_merge, "SnapshotCountMismatchError"),
    (CATCH_MAP, WORD_NAMES.process_chunks, "CorruptObjectError"),
], ids=["final-merge", "process-chunk-in-map"])
def test_a_failing_step_ends_in_its_fail_state_and_marks_nothing_on_both_engines(
        scenario, failing_state, error, tmp_path, moto_sfn, monkeypatch):
    compared = run_on_both(scenario, tmp_path, moto_sfn, monkeypatch)

    assert compared.moto_normalised["status"] == "FAILED"
    assert compared.moto_normalised["error"] == error
    assert compared.moto_path[-2:] == [failing_state, failed_state(failing_state)]
    for workspace in (compared.moto, compared.local):
        assert workspace.published_ids(scenario.kind) == []
        batches = workspace.ledger.list_batches(batch_type=scenario.kind.batch_type)
        assert batches and all(batch.status is not BatchStatus.COMPLETED for batch in batches)
        assert workspace.item_ids(scenario.kind, EmbeddingStatus.SUCCESS) == set()


def test_a_batch_that_cannot_be_polled_is_caught_and_the_rest_published_on_both_engines(
        tmp_path, moto_sfn, monkeypatch):
    compared = run_on_both(POLL_CAUGHT, tmp_path, moto_sfn, monkeypatch)

    output = compared.moto_normalised["output"]
    assert compared.moto_normalised["status"] == "SUCCEEDED"
    caught = [result for result in output["poll_results"] if result.get("action") == "poll_failed"]
    assert [(c["batch_index"], c["error"]["Error"]) for c in caught] == [(1, "CorruptObjectError")]
    assert output["mark_complete_result"]["batches_marked"] == len(output["poll_results"]) - 1
