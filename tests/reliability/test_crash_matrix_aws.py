"""The crash matrix on S3 + DynamoDB (moto's server): the process dies at every step's start and
before and after every write of polling, the final merge and marking complete; a new execution must
then finish the job with the same guarantees as on the embedded adapters (nothing lost, nothing
published twice, no orphaned lock, no batch COMPLETED before its items are published).

The points are the line workflow's from the embedded dry run (scenarios.enumerate_injection_points,
computed once per process anyway); test_the_aws_dry_run_sees_the_same_points checks that the S3 +
DynamoDB adapters produce exactly those points, so none of them is missed here.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest
from aws_scenarios import (
    AWS_EXPIRING_LEASE_SECONDS,
    AwsState,
    aws_workspace,
    copy_state,
    prepare_aws_template,
)
from crash_injection import ENTRY, CrashSwitch, WritePoint
from injection_report import record_injection_points
from moto_server import MotoEndpoint
from scenarios import (
    enumerate_injection_points,
    run_with_switch,
    smaller_thresholds,
)
from test_crash_matrix import crash_and_rerun

from embedding_ingest.stores.records import ItemKind

pytestmark = pytest.mark.slow

KIND = ItemKind.LINE  # the word workflow runs the same steps on the same adapters
WRITING_STEPS = ("embedding-line-poll", "embedding-vector-compact/final_merge",
                 "embedding-mark-batches-complete")


def _chosen(point: WritePoint) -> bool:
    return point.method == ENTRY or point.step in WRITING_STEPS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "aws_injection" not in metafunc.fixturenames:
        return
    cases = [(point, when) for point, when in enumerate_injection_points(KIND) if _chosen(point)]
    entries = sum(1 for point, _ in cases if point.method == ENTRY)
    record_injection_points(metafunc.config, "test_crash_on_aws_at", len(cases),
                            f"line workflow on S3 + DynamoDB: {entries} step entries, before/after "
                            f"{(len(cases) - entries) // 2} writes of poll, final merge and mark-complete")
    metafunc.parametrize("aws_injection", cases, ids=[point.case_id(when) for point, when in cases])


@functools.cache
def _template(endpoint: MotoEndpoint) -> AwsState:
    root = Path(tempfile.mkdtemp(prefix="reliability-aws-template-"))
    atexit.register(shutil.rmtree, root, True)
    return prepare_aws_template(root, endpoint, KIND)


@pytest.fixture
def aws_case(moto_endpoint: MotoEndpoint, tmp_path: Path) -> AwsState:
    # each case's bucket and table stay on the worker's server (small; dropping them costs ~10% per case)
    return copy_state(_template(moto_endpoint), tmp_path, moto_endpoint)


def test_the_aws_dry_run_sees_the_same_points(moto_endpoint, tmp_path):
    state = copy_state(_template(moto_endpoint), tmp_path, moto_endpoint)
    ws = aws_workspace(tmp_path, moto_endpoint, state)
    switch = CrashSwitch()
    with smaller_thresholds():
        record = run_with_switch(ws, switch, KIND)
    assert record.status.value == "SUCCEEDED", record.cause
    embedded = {point for point, _ in enumerate_injection_points(KIND) if point.method != ENTRY}
    assert set(switch.seen) == embedded
    assert {point.step for point, _ in enumerate_injection_points(KIND)} == switch.steps


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_crash_on_aws_at(aws_injection: tuple[WritePoint, str], aws_case: AwsState, moto_endpoint,
                        tmp_path: Path) -> None:
    point, when = aws_injection
    # One case leaves the dead holder's lease to the rerun, which takes it over on DynamoDB (its
    # transaction conditioned on the record version it watched); the others free it at once.
    takeover = (point.step, point.method, when) == ("embedding-vector-compact/final_merge", "acquire_lock",
                                                    "after")
    lease = {"LOCK_TTL_SECONDS": AWS_EXPIRING_LEASE_SECONDS} if takeover else {}
    ws = aws_workspace(tmp_path, moto_endpoint, aws_case, **lease)
    crash_and_rerun(ws, KIND, point, when, takeover=takeover).ledger.close()
