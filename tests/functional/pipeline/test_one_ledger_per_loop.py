"""One ledger per run loop: every execution of a loop, its history, the failure it leaves on its batches
and the count of batches still active go through the one ledger the loop opened (or was given), never
a new one each (worker processes open their own: they are other processes)."""

from __future__ import annotations

import shutil

import pytest
from pipeline import make_workspace, receipts_file

from embedding_ingest import backends
from embedding_ingest.pipeline.run import run_execution, run_until_idle
from embedding_ingest.stores.records import ItemKind


@pytest.fixture
def ledger_opens(monkeypatch):
    """Every ledger backends.build_ledger opens in this process from now on."""
    opened = []
    build = backends.build_ledger

    def spy(settings):
        opened.append(build(settings))
        return opened[-1]

    monkeypatch.setattr(backends, "build_ledger", spy)
    return opened


def test_a_loop_of_several_executions_opens_one_ledger(tmp_path, ledger_opens):
    ws = make_workspace(tmp_path, polls_per_stage=1)  # batches need several polls: several executions
    ws.import_receipts(receipts_file(tmp_path, 2))
    ws.submit(ItemKind.LINE, max_items_per_batch=60)
    ledger_opens.clear()

    idle = run_until_idle(ItemKind.LINE, ws.settings)

    assert len(idle.executions) >= 2 and idle.summary["stopped_because"] == "idle"
    assert len(ledger_opens) == 1


def test_a_given_ledger_is_used_and_no_other_is_opened(tmp_path, ledger_opens):
    ws = make_workspace(tmp_path)
    ws.import_receipts(receipts_file(tmp_path, 1))
    ws.submit(ItemKind.WORD)
    ledger_opens.clear()

    idle = run_until_idle(ItemKind.WORD, ws.settings, ledger=ws.ledger, objects=ws.objects)

    assert idle.summary["embeddings_published"] > 0 and ledger_opens == []


def test_a_failed_execution_records_its_failure_through_the_same_one_ledger(tmp_path, ledger_opens):
    ws = make_workspace(tmp_path)
    ws.import_receipts(receipts_file(tmp_path, 2))
    ws.submit(ItemKind.LINE)
    assert ws.run(ItemKind.LINE).status.value == "SUCCEEDED"
    # The published archive is lost (and not cached): the next final merge cannot build on it.
    for archive in (ws.settings.objects_dir / "lines" / "snapshot" / "segments").glob("*/*.tar"):
        archive.unlink()
    shutil.rmtree(ws.settings.cache_dir)
    ws.import_receipts(receipts_file(tmp_path, 1, start=2))
    batch_ids = [batch.batch_id for batch in ws.submit(ItemKind.LINE).batches]
    ledger_opens.clear()

    failed = run_execution(ItemKind.LINE, ws.settings, name="lost-archive")

    assert (failed["status"], failed["error"]) == ("FAILED", "ObjectNotFoundError")
    assert failed["summary"]["next"] == "embedding-ingest get-execution-history lost-archive --failed-only"
    assert all("execution lost-archive failed in " in ws.ledger.get_batch(b).last_error for b in batch_ids)
    assert len(ledger_opens) == 1
