"""Crashes while updates, deletions and metadata updates travel through the workflow (issues 10, 23):
a corrected file is synced (two lines changed, one receipt gone, both kept receipts' merchant
corrected and a section given), so one execution polls an embedding batch of the changed items, a
deletion batch and a metadata batch, merges them into one delta chain, and publishes replacements,
deletions and metadata rewrites under the lock. The process dies at each step's start and before and
after every write of PollBatches, FinalMerge and MarkBatchesComplete; a new execution must then leave
the snapshot exactly as a clean run does: every changed id once with its new text, every deleted id
gone, every record with the corrected metadata, nothing else touched, the ledger settled (changed
items SUCCESS, deleted items forgotten, every batch COMPLETED)."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from crash_injection import ENTRY, CrashSwitch, WritePoint
from injection_report import record_injection_points
from pipeline import make_workspace, receipts_file
from scenarios import SETTINGS, copy_of, expire_orphaned_lease, restarted, run_to_crash, run_with_switch

from embedding_ingest.living_keys import living_part
from embedding_ingest.snapshots import iter_published_pages
from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus, ItemKind

pytestmark = pytest.mark.slow
KIND = ItemKind.LINE
FINAL_MERGE = "embedding-vector-compact/final_merge"
STEPS = ("embedding-line-poll", "embedding-line-poll/deletions", "embedding-line-poll/metadata",
         FINAL_MERGE, "embedding-mark-batches-complete")


def published(ws) -> dict[str, tuple[str, dict]]:
    """id -> (document, living metadata and its version) of the current line snapshot; an id in two
    segments fails."""
    found: dict[str, tuple[str, dict]] = {}
    version = ws.ledger.get_published(KIND.database)
    for page in iter_published_pages(ws.objects, version, ws.settings):
        for item_id, document, metadata in zip(page.ids, page.documents, page.metadatas, strict=True):
            assert item_id not in found, f"{item_id} published twice"
            found[item_id] = (document, {**living_part(metadata),
                                         "metadata_version": metadata.get("metadata_version")})
    return found


@functools.cache
def template() -> tuple[Path, dict[str, str]]:
    """A home with 3 receipts published, then a corrected file synced and submitted; and the line
    snapshot a clean run of the next execution publishes."""
    root = Path(tempfile.mkdtemp(prefix="reliability-sync-"))
    ws = make_workspace(root, **SETTINGS)
    original = receipts_file(root, 3, start=161)  # the smallest three neighbours: 89 lines
    ws.import_receipts(original)
    ws.submit(KIND)
    assert ws.run(KIND).status.value == "SUCCEEDED"
    records = [json.loads(line) for line in original.read_text().splitlines()]
    for line in records[0]["lines"][2:4]:
        line["text"] += " (fixed)"
    for record in records[:2]:  # metadata only (issue 23), on changed and unchanged lines alike
        record["fields"]["company"] = f"CORRECTED {record['receipt_id']}"
    records[1]["lines"][0]["section"] = "header"
    corrected = root / "corrected.jsonl"
    corrected.write_text("".join(json.dumps(r) + "\n" for r in records[:2]))
    report = ws.import_receipts(corrected, sync=True)
    assert report.lines_changed >= 2 and report.lines_removed == len(records[2]["lines"])
    ws.submit(KIND)
    ws.ledger.close()
    clean_root = Path(tempfile.mkdtemp(prefix="reliability-sync-clean-"))
    clean = copy_of(ws.settings.home, clean_root)
    assert clean.run(KIND).status.value == "SUCCEEDED"
    expected = published(clean)
    assert {living["merchant_name"] for _, living in expected.values()} == {
        f"CORRECTED {record['receipt_id']}" for record in records[:2]}
    clean.ledger.close()
    shutil.rmtree(clean_root, ignore_errors=True)
    return ws.settings.home, expected


@functools.cache
def injection_points() -> tuple[tuple[WritePoint, str], ...]:
    root = Path(tempfile.mkdtemp(prefix="reliability-sync-dry-"))
    try:
        ws = copy_of(template()[0], root)
        switch = CrashSwitch()
        assert run_with_switch(ws, switch, KIND).status.value == "SUCCEEDED"
        ws.ledger.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert switch.steps >= set(STEPS), f"the dry run never ran {set(STEPS) - switch.steps}"
    entries = [(WritePoint(step, ENTRY), "before") for step in STEPS]
    writes = [(point, when) for point in switch.points(set(STEPS)) for when in ("before", "after")]
    return tuple(entries + writes)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "injection" not in metafunc.fixturenames:
        return
    cases = injection_points()
    record_injection_points(metafunc.config, "test_crash_while_syncing", len(cases),
                            f"poll, final merge, mark complete of an update + deletion run: "
                            f"{len(STEPS)} entries, before/after {(len(cases) - len(STEPS)) // 2} writes")
    metafunc.parametrize("injection", cases, ids=[point.case_id(when) for point, when in cases])


def test_the_dry_run_applies_deletions_and_replacements():
    methods = {point.method for point, _ in injection_points()}
    assert {"forget_deleted", "mark_items_succeeded", "publish_version", "put_bytes"} <= methods


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_crash_while_syncing(injection: tuple[WritePoint, str], tmp_path) -> None:
    point, when = injection
    home, expected = template()
    ws = copy_of(home, tmp_path)
    switch = CrashSwitch(target=point, when=when)
    unreached = run_to_crash(ws, switch, KIND)
    if unreached is not None:  # the history says why; the run must still end as a clean run does
        assert unreached.record.status.value == "SUCCEEDED" and published(ws) == expected
        pytest.skip(unreached.reason)
    after = restarted(ws)
    expire_orphaned_lease(after, KIND.database)
    record = after.run(KIND)
    assert record.status.value == "SUCCEEDED", f"rerun failed: {record.error}: {record.cause}"

    assert published(after) == expected, "the snapshot differs from a clean run's"
    assert after.statuses(KIND) == {"SUCCESS": len(expected)}, "deleted items not forgotten, or unsettled"
    assert not after.ledger.find_items(KIND, EmbeddingStatus.DELETING)
    batches = after.ledger.list_batches(batch_type=KIND.batch_type)
    assert {b.status for b in batches} == {BatchStatus.COMPLETED}
    again = after.run(KIND)  # and a rerun changes nothing
    assert again.status.value == "SUCCEEDED" and published(after) == expected


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_lost_lease_moves_no_crash_point(tmp_path) -> None:
    """What once let cases pass without testing anything: on a loaded machine FinalMerge's short lease
    lapsed, its publish was refused and it was retried; the retry skipped the tombstones object the
    first attempt had written, every later write moved by one, and the crash was never injected. Here
    the first attempt's lease ends under it (freed as an expiry would, while its publish is held): the
    pointer write is still found, in the retry, by what it writes, and the rerun finishes the job."""
    point = WritePoint(FINAL_MERGE, "put_bytes", "lines/snapshot/latest/pointer.json", 1)
    assert (point, "before") in injection_points()
    home, expected = template()
    ws = copy_of(home, tmp_path)
    held = threading.Event()
    switch = CrashSwitch(target=point, hold_until={"publish_version": held})

    def end_the_first_lease() -> None:
        try:
            if switch.arrival("publish_version").wait(timeout=60):
                watcher = restarted(ws)  # its own connection, as another process would have
                lease = watcher.ledger.current_lease(KIND.database)
                assert lease is not None and watcher.ledger.release_lock(lease)
                watcher.ledger.close()
        finally:
            held.set()

    threading.Thread(target=end_the_first_lease, name="lease-ender", daemon=True).start()
    assert run_to_crash(ws, switch, KIND) is None
    first, retry = switch.attempts_of(FINAL_MERGE)
    tombstones = WritePoint(FINAL_MERGE, "put_bytes", "lines/snapshot/tombstones/*.json", 1)
    assert first.error == "StaleFencingTokenError" and tombstones in first.writes
    assert tombstones not in retry.writes and retry.outcome == "died" and point in retry.writes

    after = restarted(ws)
    expire_orphaned_lease(after, KIND.database)
    record = after.run(KIND)
    assert record.status.value == "SUCCEEDED", f"rerun failed: {record.error}: {record.cause}"
    assert published(after) == expected, "the snapshot differs from a clean run's"
