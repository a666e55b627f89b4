"""The crash matrix on S3 + DynamoDB (moto's server): the process dies at every step's start and
before and after every write of polling, the final merge and marking complete; a new execution must
then finish the job with the same guarantees as on the embedded adapters (nothing lost, nothing
published twice, no orphaned lock, no batch COMPLETED before its items are published).

The points are the line workflow's from the embedded dry run (scenarios.enumerate_injection_points,
computed once per process anyway); test_the_aws_dry_run_sees_the_same_points checks that the S3 +
DynamoDB adapters produce exactly those points, so none of them is missed here. The word workflow runs
the same steps on the same adapters except where its kind shows: its poll (word results, the words
delta) and its own lock and published pointer; its cases are those points (_word_case). One line case
(LABELLED_CASE) also carries a metadata batch (issue 23) through the run it crashes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_scenarios import (
    AWS_EXPIRING_LEASE_SECONDS,
    aws_workspace,
    copy_state,
    shared_template,
)
from crash_injection import ENTRY, CrashSwitch, WritePoint
from injection_report import record_injection_points
from scenarios import (
    enumerate_injection_points,
    run_with_switch,
    smaller_thresholds,
)
from test_crash_matrix import crash_and_rerun

from embedding_ingest.snapshots import iter_published_pages
from embedding_ingest.stores.records import BatchOperation, BatchStatus, EmbeddingStatus, ItemKind
from embedding_ingest.submission.labels import apply_labels

pytestmark = pytest.mark.slow

KIND = ItemKind.LINE  # every point of the writing steps; the word workflow's at _word_case
WRITING_STEPS = ("embedding-line-poll", "embedding-vector-compact/final_merge",
                 "embedding-mark-batches-complete")
FINAL_MERGE = "embedding-vector-compact/final_merge"
# Issue 23: this case's run also carries a metadata batch (labels applied to published lines): the
# process dies with labels and records published and nothing settled (_apply_labels)
LABELLED_CASE = (KIND, FINAL_MERGE, "publish_version", "after")


def _chosen(point: WritePoint) -> bool:
    return point.method == ENTRY or point.step in WRITING_STEPS


def _word_case(point: WritePoint, when: str) -> bool:
    """The word workflow's own points: its poll's entry and each of its writes landed ("before" a
    poll write leaves what the previous point left: the poll writes nothing between them), taking over
    the words lock, and the words pointer's publish on both sides. The rest is the line cases'."""
    if point.step == "embedding-word-poll":
        return point.method == ENTRY or when == "after"
    return point.step == FINAL_MERGE and (point.method == "publish_version" or (
        point.method == "acquire_lock" and when == "after"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "aws_injection" not in metafunc.fixturenames:
        return
    cases = [(KIND, point, when) for point, when in enumerate_injection_points(KIND) if _chosen(point)]
    entries = sum(1 for _, point, _ in cases if point.method == ENTRY)
    words = [(ItemKind.WORD, point, when) for point, when in enumerate_injection_points(ItemKind.WORD)
             if _word_case(point, when)]
    record_injection_points(metafunc.config, "test_crash_on_aws_at", len(cases) + len(words),
                            f"line workflow on S3 + DynamoDB: {entries} step entries, before/after "
                            f"{(len(cases) - entries) // 2} writes of poll, final merge and mark-complete; "
                            f"word workflow: {len(words)} points of its poll, lock and pointer")
    cases += words
    metafunc.parametrize("aws_injection", cases,
                         ids=[f"{kind.value}-{point.case_id(when)}" for kind, point, when in cases])


def test_the_aws_dry_run_sees_the_same_points(moto_endpoint, tmp_path):
    state = copy_state(shared_template(moto_endpoint, KIND), tmp_path, moto_endpoint)
    ws = aws_workspace(tmp_path, moto_endpoint, state)
    switch = CrashSwitch()
    with smaller_thresholds():
        record = run_with_switch(ws, switch, KIND)
    assert record.status.value == "SUCCEEDED", record.cause
    embedded = {point for point, _ in enumerate_injection_points(KIND) if point.method != ENTRY}
    assert set(switch.seen) == embedded
    assert {point.step for point, _ in enumerate_injection_points(KIND)} == switch.steps


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_crash_on_aws_at(aws_injection: tuple[ItemKind, WritePoint, str], moto_endpoint,
                        tmp_path: Path) -> None:
    kind, point, when = aws_injection
    # each case's bucket and table stay on the worker's server (small; dropping them costs ~10% per case)
    state = copy_state(shared_template(moto_endpoint, kind), tmp_path, moto_endpoint)
    # One case per workflow leaves the dead holder's lease to the rerun, which takes it over on DynamoDB
    # (its transaction conditioned on the record version it watched); the others free it at once.
    takeover = (point.step, point.method, when) == (FINAL_MERGE, "acquire_lock", "after")
    lease = {"LOCK_TTL_SECONDS": AWS_EXPIRING_LEASE_SECONDS} if takeover else {}
    ws = aws_workspace(tmp_path, moto_endpoint, state, **lease)
    labelled = (kind, point.step, point.method, when) == LABELLED_CASE
    asked = _apply_labels(ws, tmp_path) if labelled else None
    after = crash_and_rerun(ws, kind, point, when, takeover=takeover)
    if asked is not None:
        _assert_labels_published_once(after, *asked)
    after.ledger.close()


def _apply_labels(ws, tmp_path: Path) -> tuple[list[str], int]:
    """`labels apply` on three published lines (relabelled in place in DynamoDB, one metadata batch);
    returns their ids and how many provider batches exist."""
    lines = list(ws.ledger.get_items(sorted(ws.item_ids(KIND, EmbeddingStatus.SUCCESS))[:3]).values())
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"receipt_id": i.image_id, "receipt_number": i.receipt_number,
                                          "line_id": i.line_id, "labels": [{"label": "TOTAL",
                                                                            "status": "validated"}]}) + "\n"
                              for i in lines))
    report = apply_labels(labels, ws.ledger)
    assert (report.lines_relabelled, len(report.metadata_batches)) == (3, 1)
    return [i.item_id for i in lines], len(ws.ctx.provider.engine.list_batches())


def _assert_labels_published_once(ws, ids: list[str], asked: int) -> None:
    """The labels are on the snapshot at their new metadata version, the metadata batch is settled,
    nothing is left pending, and no provider batch was made for them."""
    version = ws.ledger.get_published(KIND.database)
    labelled = {item_id: metadata for page in iter_published_pages(ws.objects, version, ws.settings)
                for item_id, metadata in zip(page.ids, page.metadatas, strict=True)
                if metadata.get("label_TOTAL") is True}
    assert sorted(labelled) == sorted(ids)
    assert {m["metadata_version"] for m in labelled.values()} == {2}
    (metadata_batch,) = [b for b in ws.ledger.list_batches(batch_type=KIND.batch_type)
                         if b.operation is BatchOperation.METADATA]
    assert metadata_batch.status is BatchStatus.COMPLETED
    assert ws.ledger.find_metadata_pending(KIND) == []
    assert len(ws.ctx.provider.engine.list_batches()) == asked

