"""LocalBatchProvider through every status, with its state in real files shared across processes."""

import multiprocessing
import pickle
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
from provider_files import read_file

from embedding_ingest.providers.base import ProviderBatchStatus
from embedding_ingest.providers.batch_files import OutputRecord, iter_output_records, parse_error_file
from embedding_ingest.providers.exceptions import (
    BatchLimitError,
    ProviderRequestError,
    UnknownProviderBatchError,
    UnknownProviderFileError,
)
from embedding_ingest.providers.local import LocalBatchProvider

DIMS = 48


@pytest.fixture
def provider(tmp_path) -> LocalBatchProvider:
    return LocalBatchProvider(tmp_path / "provider", dimensions=DIMS)


def outputs(provider, batch) -> dict[str, list[float]]:
    records = list(iter_output_records(read_file(provider, batch.output_file_id), dimensions=DIMS))
    assert all(isinstance(record, OutputRecord) for record in records), records
    return {record.custom_id: record.embedding.tolist() for record in records}


def test_names_its_model_and_dimensions(provider):
    assert (provider.name, provider.model, provider.dimensions) == ("local", "local-hash-ngram-v1", DIMS)


def test_walks_every_stage_one_poll_at_a_time_and_returns_every_submitted_item(provider, make_requests, walk):
    submitted = provider.submit("batch-1", make_requests(5), {"receipt": "img#1"})
    assert submitted.status is ProviderBatchStatus.VALIDATING
    assert submitted.metadata == {"receipt": "img#1", "batch_id": "batch-1"}

    assert walk(provider, submitted.provider_batch_id) == ["in_progress", "finalizing", "completed"]
    done = provider.retrieve(submitted.provider_batch_id)
    assert done.status is ProviderBatchStatus.COMPLETED  # stays completed
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (5, 5, 0)
    assert done.error_file_id is None
    vectors = outputs(provider, done)
    assert sorted(vectors) == [f"item-{n}" for n in range(5)]
    # The batch computes exactly what a query embedding of the same text gives.
    expected = provider.embed(["receipt word item-3 <left> total"])[0]
    np.testing.assert_allclose(vectors["item-3"], expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("polls_per_stage", "expected"),
    [
        (0, ["completed"]),
        (2, ["validating", "in_progress", "in_progress", "finalizing", "finalizing", "completed"]),
    ],
)
def test_polls_per_stage_sets_how_long_each_status_lasts(
    tmp_path, make_requests, walk, polls_per_stage, expected
):
    provider = LocalBatchProvider(tmp_path, dimensions=DIMS, polls_per_stage=polls_per_stage)
    batch = provider.submit("b", make_requests(2), {})
    assert walk(provider, batch.provider_batch_id) == expected


def test_failing_requests_land_in_the_error_file_and_the_rest_in_the_output(tmp_path, make_requests, walk):
    provider = LocalBatchProvider(tmp_path, dimensions=DIMS, fail_custom_ids=["item-0"], fail_every=3)
    batch = provider.submit("b", make_requests(7), {})
    walk(provider, batch.provider_batch_id)
    done = provider.retrieve(batch.provider_batch_id)
    errors = parse_error_file(read_file(provider, done.error_file_id))
    assert sorted(errors) == ["item-0", "item-2", "item-5"]  # item-0 by id, every 3rd request by position
    assert all(f.reason.startswith("status_code 400") and f.content for f in errors.values())
    assert sorted(outputs(provider, done)) == ["item-1", "item-3", "item-4", "item-6"]
    assert (done.request_counts.completed, done.request_counts.failed) == (4, 3)


def test_a_completed_batch_where_everything_failed_has_no_output_file(tmp_path, make_requests, walk):
    provider = LocalBatchProvider(tmp_path, dimensions=DIMS, fail_every=1, polls_per_stage=0)
    batch = provider.submit("b", make_requests(3), {})
    assert walk(provider, batch.provider_batch_id) == ["completed"]
    done = provider.retrieve(batch.provider_batch_id)
    assert done.output_file_id is None
    assert len(parse_error_file(read_file(provider, done.error_file_id))) == 3


def test_failed_outcome_fails_the_batch_without_files_and_metadata_overrides_per_batch(
    tmp_path, make_requests, walk
):
    provider = LocalBatchProvider(tmp_path, dimensions=DIMS, outcome="failed")
    failing = provider.submit("failing", make_requests(2), {})
    assert walk(provider, failing.provider_batch_id) == ["failed"]
    failed = provider.retrieve(failing.provider_batch_id)
    assert failed.output_file_id is None and failed.error_file_id is None
    assert failed.errors == ["injected_failure: batch failed by fault injection (local_outcome=failed)"]

    ok = LocalBatchProvider(tmp_path / "other", dimensions=DIMS)
    a = ok.submit("a", make_requests(2), {"local_outcome": "failed"})
    b = ok.submit("b", make_requests(2), {})
    assert walk(ok, a.provider_batch_id) == ["failed"]
    assert walk(ok, b.provider_batch_id)[-1] == "completed"


def test_expired_batch_keeps_the_results_it_has_and_reports_the_rest_as_batch_expired(
    tmp_path, make_requests, walk
):
    provider = LocalBatchProvider(tmp_path, dimensions=DIMS)
    batch = provider.submit(
        "b", make_requests(6), {"local_outcome": "expired", "local_fail_custom_ids": "item-1"}
    )
    assert walk(provider, batch.provider_batch_id) == ["in_progress", "expired"]
    expired = provider.retrieve(batch.provider_batch_id)
    errors = parse_error_file(read_file(provider, expired.error_file_id))
    assert sorted(outputs(provider, expired)) == ["item-0", "item-2"]
    assert errors["item-1"].reason.startswith("status_code 400")
    assert {errors[f"item-{n}"].reason.split(":")[0] for n in (3, 4, 5)} == {"batch_expired"}
    assert (
        expired.request_counts.total,
        expired.request_counts.completed,
        expired.request_counts.failed,
    ) == (6, 2, 4)


def test_cancel_while_running_keeps_partial_results_and_never_runs_the_rest(provider, make_requests):
    batch = provider.submit("b", make_requests(4), {})
    assert provider.retrieve(batch.provider_batch_id).status is ProviderBatchStatus.IN_PROGRESS
    assert provider.cancel(batch.provider_batch_id).status is ProviderBatchStatus.CANCELLING
    assert provider.cancel(batch.provider_batch_id).status is ProviderBatchStatus.CANCELLING  # repeatable
    cancelled = provider.retrieve(batch.provider_batch_id)
    assert cancelled.status is ProviderBatchStatus.CANCELLED
    assert sorted(outputs(provider, cancelled)) == ["item-0", "item-1"]
    assert cancelled.error_file_id is None  # the other two never ran: they are in no file at all
    assert provider.cancel(batch.provider_batch_id).status is ProviderBatchStatus.CANCELLED  # a no-op now


def test_cancel_before_validation_cancels_with_nothing_run(provider, make_requests, walk):
    batch = provider.submit("b", make_requests(2), {})
    provider.cancel(batch.provider_batch_id)
    assert walk(provider, batch.provider_batch_id) == ["cancelled"]
    cancelled = provider.retrieve(batch.provider_batch_id)
    assert cancelled.output_file_id is None and cancelled.error_file_id is None


def test_completed_batches_cannot_be_cancelled(tmp_path, make_requests):
    provider = LocalBatchProvider(tmp_path, dimensions=DIMS, polls_per_stage=0)
    batch = provider.submit("b", make_requests(1), {})
    provider.retrieve(batch.provider_batch_id)
    with pytest.raises(ProviderRequestError, match="is completed and cannot be cancelled"):
        provider.cancel(batch.provider_batch_id)


def test_invalid_request_lines_fail_the_batch_naming_each_line(provider, make_requests, walk):
    data = (
        make_requests(2)
        + b'{"custom_id": "x", "method": "GET"}\n'
        + b"not json\n"
        + make_requests(ids=["item-0"])
    )
    batch = provider.submit("b", data, {})
    assert walk(provider, batch.provider_batch_id) == ["failed"]
    errors = provider.retrieve(batch.provider_batch_id).errors
    assert errors[0] == "line 3: invalid_request: method must be POST, got 'GET'"
    assert errors[1].startswith("line 4: invalid_request: line is not valid JSON")
    assert errors[2] == "line 5: duplicate_custom_id: custom_id 'item-0' repeats line 1"


def test_submit_is_idempotent_on_batch_id_until_the_batch_ends_badly(tmp_path, make_requests, walk):
    provider = LocalBatchProvider(tmp_path, dimensions=DIMS)
    first = provider.submit("batch-7", make_requests(2), {"local_outcome": "failed"})
    again = provider.submit("batch-7", make_requests(2), {"local_outcome": "failed"})
    assert again.provider_batch_id == first.provider_batch_id
    assert len(provider.engine.list_batches()) == 1

    walk(provider, first.provider_batch_id)  # it fails, so the next submit makes a new batch
    retry = provider.submit("batch-7", make_requests(2), {})
    assert retry.provider_batch_id != first.provider_batch_id
    assert walk(provider, retry.provider_batch_id)[-1] == "completed"
    assert provider.submit("batch-7", make_requests(2), {}).provider_batch_id == retry.provider_batch_id
    assert len(provider.engine.list_batches()) == 2


def test_unknown_batches_and_files_are_named_in_the_error(provider):
    for bad_id in ("batch_nope", "../../etc/passwd", ""):
        with pytest.raises(UnknownProviderBatchError) as caught:
            provider.retrieve(bad_id)
        assert caught.value.provider_batch_id == bad_id
    with pytest.raises(UnknownProviderBatchError):
        provider.cancel("batch_nope")
    with pytest.raises(UnknownProviderFileError, match="file-missing"):
        read_file(provider, "file-missing")


def test_empty_input_and_bad_fault_options_are_refused_at_submit(provider, make_requests):
    with pytest.raises(BatchLimitError, match="no requests"):
        provider.submit("b", b"", {})
    with pytest.raises(ProviderRequestError, match="fail_every"):
        provider.submit("b", make_requests(1), {"local_fail_every": "often"})
    with pytest.raises(ProviderRequestError, match="outcome"):
        provider.submit("b", make_requests(1), {"local_outcome": "exploded"})


def _finish_in_this_process(provider_bytes: bytes, provider_batch_id: str) -> tuple[str, list[str]]:
    provider = pickle.loads(provider_bytes)
    statuses = []
    while not statuses or statuses[-1] != "completed":
        statuses.append(provider.retrieve(provider_batch_id).status.value)
    batch = provider.retrieve(provider_batch_id)
    ids = sorted(
        r.custom_id for r in iter_output_records(read_file(provider, batch.output_file_id), dimensions=DIMS)
    )
    return statuses[-1], ids


def test_batches_submitted_here_finish_in_other_processes_concurrently(provider, make_requests):
    batches = [provider.submit(f"b{n}", make_requests(ids=[f"b{n}-x", f"b{n}-y"]), {}) for n in range(4)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(
            pool.map(
                _finish_in_this_process, [pickle.dumps(provider)] * 4, [b.provider_batch_id for b in batches]
            )
        )
    assert results == [("completed", [f"b{n}-x", f"b{n}-y"]) for n in range(4)]
    # And this process sees the state they left.
    assert all(
        provider.retrieve(b.provider_batch_id).status is ProviderBatchStatus.COMPLETED for b in batches
    )


def test_concurrent_polls_of_one_batch_each_advance_it_exactly_once(provider, make_requests):
    batch = provider.submit("b", make_requests(3), {})
    barrier = threading.Barrier(3, timeout=60)

    def poll() -> str:
        barrier.wait()
        return provider.retrieve(batch.provider_batch_id).status.value

    with ThreadPoolExecutor(3) as pool:
        seen = [future.result(timeout=60) for future in [pool.submit(poll) for _ in range(3)]]
    assert sorted(seen) == ["completed", "finalizing", "in_progress"]
    assert sorted(outputs(provider, provider.retrieve(batch.provider_batch_id))) == [
        "item-0",
        "item-1",
        "item-2",
    ]


def test_query_embeddings_are_unit_vectors_that_rank_similar_text_first(provider):
    query, near, far = provider.embed(["TOTAL 45.10", "TOTAL DUE 45.10", "Thank you, come again"])
    assert len(query) == DIMS
    assert np.dot(query, near) > np.dot(query, far)
    assert np.linalg.norm(query) == pytest.approx(1.0, rel=1e-5)
