"""Issue 19's findings end to end: the real pipeline (submit, the line workflow on the local engine) on
the OpenAI provider through the real `openai` SDK against the fake, whose every reply is checked against
OpenAI's published schemas. Each test names the finding it covers; provider-level cases are in
tests/functional/providers/test_openai_as_it_behaves.py, model changes in test_model_migration.py."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from cli_runner import Cli
from fake_openai import API_KEY, FakeClock, FakeOpenAI, running_fake_openai
from pipeline import Workspace, make_workspace, receipts_file

from embedding_ingest.pipeline.run import run_until_idle
from embedding_ingest.providers import openai_batch
from embedding_ingest.providers.exceptions import ProviderAccountError
from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus, ItemKind

LINE = ItemKind.LINE


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(tmp_path, clock):
    with running_fake_openai(tmp_path / "fake-openai", dimensions=16, clock=clock) as server:
        server.set_faults(polls_per_stage=0)
        yield server


def openai_workspace(tmp_path, fake: FakeOpenAI, **settings) -> Workspace:
    ws = make_workspace(tmp_path, EMBEDDING_PROVIDER="openai", OPENAI_API_KEY=API_KEY,
                        OPENAI_BASE_URL=fake.base_url, EMBEDDING_MODEL="text-embedding-3-small", **settings)
    ws.import_receipts(receipts_file(tmp_path, 1))
    return ws


def billed(fake: FakeOpenAI) -> Counter:
    """custom_id -> how many times the provider ran (and billed) it, over every output file."""
    ran: Counter = Counter()
    for batch in fake.batches_created():
        if batch["output_file_id"]:
            for raw in fake.engine.file_content(batch["output_file_id"]).splitlines():
                line = json.loads(raw)
                ran[line["custom_id"]] += line["response"]["status_code"] == 200
    return ran


def items(ws: Workspace):
    return list(ws.ledger.get_items(sorted(ws.item_ids(LINE))).values())


def submit_and_run(ws: Workspace) -> None:
    ws.submit(LINE)
    records = ws.run_until_idle(LINE)
    assert records[-1].status.value == "SUCCEEDED"


def assert_everything_published_once(ws: Workspace, fake: FakeOpenAI) -> None:
    every = ws.item_ids(LINE)
    assert ws.statuses(LINE) == {"SUCCESS": len(every)}
    assert sorted(ws.published_ids(LINE)) == sorted(every)
    assert set(billed(fake)) == every and set(billed(fake).values()) == {1}  # no custom_id billed twice


# -- finding 1 ------------------------------------------------------------------------------------------
def test_1_a_width_below_the_native_one_is_asked_for_in_every_line_and_published(tmp_path, fake):
    ws = openai_workspace(tmp_path, fake)  # EMBEDDING_DIMENSIONS=16, text-embedding-3-small (1536 native)
    submit_and_run(ws)
    lines = [json.loads(raw) for batch in fake.batches_created()
             for raw in fake.engine.file_content(batch["input_file_id"]).splitlines()]
    asked = {(line["body"]["dimensions"], line["body"]["encoding_format"]) for line in lines}
    assert asked == {(16, "base64")}
    assert_everything_published_once(ws, fake)
    assert ws.ledger.get_published("lines").dimensions == 16


# -- finding 2 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cancelled_code", [None, "batch_cancelled"])  # never-ran: in no file / error file
def test_2_a_cancelled_batch_keeps_its_partial_output_and_the_rest_is_sent_again(tmp_path, fake, clock,
                                                                                cancelled_code):
    fake.set_faults(latency_seconds=3600, cancelled_code=cancelled_code)
    ws = openai_workspace(tmp_path, fake)
    report = ws.submit(LINE)
    ws.run(LINE)  # in_progress at the provider
    for batch in report.batches:
        ws.ctx.provider.cancel(batch.provider_batch_id)
    ws.run_until_idle(LINE)

    published = set(ws.published_ids(LINE))
    assert 0 < len(published) < len(ws.item_ids(LINE))  # what ran before the cancel is kept
    assert {b.status for b in ws.ledger.list_batches()} == {BatchStatus.CANCELLED}
    rest = [i for i in items(ws) if i.item_id not in published]
    assert {(i.embedding_status, i.attempts, i.provider_retries) for i in rest} == {
        (EmbeddingStatus.NONE, 0, 1)}
    reasons = {i.last_error for i in rest}
    if cancelled_code is None:  # in no file: missing from the output of a cancelled batch
        assert reasons == {"batch cancelled before this request ran"}
    else:  # in the error file with response null
        assert all(reason.startswith("error file: batch_cancelled") for reason in reasons), reasons

    fake.set_faults(latency_seconds=None)
    submit_and_run(ws)
    assert_everything_published_once(ws, fake)


# -- finding 3 ------------------------------------------------------------------------------------------
def test_3_quota_exhausted_stops_submit_in_one_line_keeps_the_claim_and_uploads_once(tmp_path, fake):
    ws = openai_workspace(tmp_path, fake)
    fake.fail_with_quota(1, method="POST", path="/v1/batches")  # the upload went through, the create not
    with pytest.raises(ProviderAccountError, match="429 insufficient_quota"):
        ws.submit(LINE)
    (claimed,) = ws.ledger.list_batches()
    assert claimed.status is BatchStatus.PENDING and claimed.input_file_id is not None
    assert {(i.embedding_status, i.attempts, i.provider_retries) for i in items(ws)} == {
        (EmbeddingStatus.PENDING, 0, 0)}

    fake.set_account(quota_exhausted=True)
    with pytest.raises(ProviderAccountError):
        ws.submit(LINE)
    fake.set_account()
    submit_and_run(ws)
    assert len(fake.calls_to("POST", "/v1/files")) == 1  # the resumed submit reused the uploaded file
    assert_everything_published_once(ws, fake)


def test_3_quota_through_the_cli_is_one_line_and_exit_code_2(tmp_path, fake):
    ws = openai_workspace(tmp_path, fake)
    fake.set_account(quota_exhausted=True)
    cli = Cli(home=ws.settings.home, settings={
        "EMBEDDING_PROVIDER": "openai", "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake.base_url,
        "EMBEDDING_MODEL": "text-embedding-3-small", "EMBEDDING_DIMENSIONS": "16"})
    done = cli.run("submit", "line", code=2)
    last = done.stderr.strip().splitlines()[-1]  # one line in the CLI's error style
    assert last.startswith("error: ") and (
        "OpenAI quota or billing limit reached (429 insufficient_quota): add credit or raise the limit at "
        "platform.openai.com; nothing was submitted or changed; try: ") in last
    assert "Traceback" not in done.stderr
    (claimed,) = ws.ledger.list_batches()  # kept for the next submit, which resumes it
    assert claimed.provider_batch_id is None and "quota" in claimed.last_error
    assert {(i.attempts, i.provider_retries) for i in items(ws)} == {(0, 0)}
    assert fake.calls_to("POST", "/v1/batches") == []


# -- finding 4 ------------------------------------------------------------------------------------------
def test_4_three_expired_nights_spend_no_attempt(tmp_path, fake):
    fake.set_faults(outcome="expired")
    ws = openai_workspace(tmp_path, fake)
    for _night in range(3):
        submit_and_run(ws)
    assert {i.attempts for i in items(ws)} == {0}
    assert max(i.provider_retries for i in items(ws)) == 3
    assert ws.statuses(LINE)["NONE"] > 0
    fake.set_faults(outcome=None)
    submit_and_run(ws)
    assert_everything_published_once(ws, fake)


def test_4_a_queue_limit_whatever_its_code_spends_no_attempt(tmp_path, fake):
    fake.set_faults(outcome="failed", failure_code="request_limit_exceeded")  # a code nobody documented
    ws = openai_workspace(tmp_path, fake)
    submit_and_run(ws)
    assert {(i.embedding_status, i.attempts, i.provider_retries) for i in items(ws)} == {
        (EmbeddingStatus.NONE, 0, 1)}
    fake.set_faults(outcome=None)
    submit_and_run(ws)
    assert_everything_published_once(ws, fake)


# -- finding 5 ------------------------------------------------------------------------------------------
def test_5_output_is_read_in_chunks_that_split_lines_anywhere(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(openai_batch, "DOWNLOAD_CHUNK_BYTES", 777)
    ws = openai_workspace(tmp_path, fake)
    submit_and_run(ws)
    assert_everything_published_once(ws, fake)


# -- finding 6 ------------------------------------------------------------------------------------------
def test_6_an_output_file_gone_before_the_first_poll_releases_the_items_for_free(tmp_path, fake):
    ws = openai_workspace(tmp_path, fake)
    report = ws.submit(LINE)
    for batch in report.batches:  # finished at the provider, then 30 days pass before we look
        done = fake.engine.retrieve_batch(batch.provider_batch_id)
        fake.expire_file(done["output_file_id"])
    ws.run_until_idle(LINE)
    assert {b.status for b in ws.ledger.list_batches()} == {BatchStatus.EXPIRED}
    assert {(i.embedding_status, i.attempts, i.provider_retries) for i in items(ws)} == {
        (EmbeddingStatus.NONE, 0, 1)}
    assert {i.last_error for i in items(ws)} == {
        "output file gone (404; OpenAI deletes batch output files 30 days after the batch completes)"}
    submit_and_run(ws)
    assert ws.statuses(LINE) == {"SUCCESS": len(ws.item_ids(LINE))}


# -- finding 7 ------------------------------------------------------------------------------------------
def test_7_a_vanished_batch_does_not_stall_until_idle_and_is_closed_after_its_grace(tmp_path, fake):
    ws = openai_workspace(tmp_path, fake)
    (batch,) = ws.submit(LINE).batches
    fake.vanish(batch.provider_batch_id)

    idle = run_until_idle(LINE, ws.settings, interval=0, max_runs=5)
    assert idle.summary["stopped_because"] == "idle" and len(idle.executions) == 1  # not 5 runs to max_runs
    summary = ws.ledger.get_batch(batch.batch_id)
    assert summary.status is BatchStatus.PENDING and summary.not_found_polls == 1
    assert "answers 404" in summary.last_error

    ws.run(LINE)  # a one-off 404 only delays: still waiting after two polls
    assert ws.ledger.get_batch(batch.batch_id).status is BatchStatus.PENDING
    ws.ledger.update_batch(batch.batch_id, not_found_since=time.time() - 601)  # ten minutes later
    ws.run(LINE)
    closed = ws.ledger.get_batch(batch.batch_id)
    assert (closed.status, closed.provider_status) == (BatchStatus.FAILED, "not_found")
    assert {(i.embedding_status, i.attempts, i.provider_retries) for i in items(ws)} == {
        (EmbeddingStatus.NONE, 0, 1)}
    submit_and_run(ws)
    assert ws.statuses(LINE) == {"SUCCESS": len(ws.item_ids(LINE))}


def test_7_batches_reset_to_failed_really_releases_the_items(tmp_path, fake, clock):
    fake.set_faults(latency_seconds=3600)
    ws = openai_workspace(tmp_path, fake)
    (batch,) = ws.submit(LINE).batches
    ws.run(LINE)  # in_progress at the provider
    cli = Cli(home=ws.settings.home, settings={
        "EMBEDDING_PROVIDER": "openai", "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake.base_url,
        "EMBEDDING_MODEL": "text-embedding-3-small", "EMBEDDING_DIMENSIONS": "16"})

    done = cli.run("batches", "reset", "--status", "failed", "--ids", batch.batch_id)

    assert "next: embedding-ingest submit line" in done.stderr
    assert fake.engine.batch_object(batch.provider_batch_id)["status"] == "cancelling"  # not paid twice
    assert ws.statuses(LINE) == {"NONE": len(ws.item_ids(LINE))}
    assert {i.attempts for i in items(ws)} == {0}
    fake.set_faults(latency_seconds=None)
    assert ws.submit(LINE).items_submitted == len(ws.item_ids(LINE))  # was 0 before issue 19
