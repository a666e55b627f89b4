"""The results half of polling: turn a finished provider batch's files into one delta snapshot.

Nothing requested is lost: every item of the batch either lands in the delta or is released back to
NONE with the reason (error file, rejected output line, missing from the output; lesson 10) and its
cause (records.ReleaseCause): only a request the provider ran and refused for its content spends an
attempt; one that never ran (the batch expired or was cancelled first, its output file is gone) or
failed on the provider's side counts a provider retry instead (issue 19). Items stay PENDING until
their snapshot is published (lesson 7); mark_batches_complete moves them on.

Memory stays bounded whatever the output's size (issue 19): the file is streamed from the provider in
chunks, each line parsed to a float32 row, and accepted rows go to the delta a page at a time.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedding_ingest.providers.base import ProviderBatch, ProviderBatchStatus
from embedding_ingest.providers.batch_files import (
    LineProblem,
    OutputRecord,
    RequestFailure,
    iter_output_records,
    parse_error_file,
)
from embedding_ingest.providers.exceptions import UnknownProviderFileError
from embedding_ingest.snapshots import RecordPage, write_snapshot
from embedding_ingest.snapshots.archive import materialize
from embedding_ingest.snapshots.build import existing_manifest
from embedding_ingest.snapshots.flat import iter_pages
from embedding_ingest.snapshots.metadata_update import VERSION_KEY
from embedding_ingest.snapshots.revisions import REVISION, revision_of
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import PROBLEM_TEXT_LIMIT
from embedding_ingest.steps.keys import delta_prefix
from embedding_ingest.steps.logs import logger
from embedding_ingest.stores.records import (
    BatchSummary,
    EmbeddingStatus,
    ItemKind,
    LeanItem,
    ReleaseCause,
)

PAGE_SIZE = 1000
UNKNOWN_IDS_KEPT = 1000  # on the batch summary; more are counted in the problems only
OUTPUT_GONE = "output file gone (404; OpenAI deletes batch output files 30 days after the batch completes)"
_NEVER_RAN = {
    ProviderBatchStatus.EXPIRED: "batch expired before this request ran",
    ProviderBatchStatus.CANCELLED: "batch cancelled before this request ran",
}


@dataclass
class IngestOutcome:
    results_count: int = 0  # non-blank output lines read
    embedding_count: int = 0  # embeddings in the delta
    delta_key: str | None = None
    released: dict[str, str] = field(default_factory=dict)  # item_id -> reason
    problems: list[str] = field(default_factory=list)  # one line per rejected output line
    billed_tokens: int = 0  # usage.total_tokens summed over every answered request of the output
    # custom_ids of output lines that name no item of this batch (kept on the batch summary)
    unknown_custom_ids: list[str] = field(default_factory=list)
    output_gone: bool = False  # the output file was answered 404 and no delta had been written

    def problems_for_result(self) -> dict[str, int | str | None]:
        first = self.problems[0] if self.problems else None
        if first is not None and len(first) > PROBLEM_TEXT_LIMIT:
            first = first[:PROBLEM_TEXT_LIMIT - 1] + "…"
        return {"problem_count": len(self.problems), "first_problem": first}


def batch_items(ctx: StepContext, kind: ItemKind, batch_id: str) -> dict[str, LeanItem]:
    """Items this batch asked for that still count: PENDING, or SUCCESS from an earlier publish of the
    same results (so a rerun builds the same delta). Only what ingesting needs of each (LeanItem): a
    full batch's 50,000 items are all held at once (issue 19, poll_peak_rss_mb)."""
    statuses = (EmbeddingStatus.PENDING, EmbeddingStatus.SUCCESS)
    return {item.item_id: item for item in ctx.ledger.find_lean_items(kind, batch_id, statuses)}


@dataclass
class _Reading:
    """What one pass over the output file learns beside the pages it yields."""

    batch_id: str
    items: dict[str, LeanItem]
    outcome: IngestOutcome
    accepted: dict[str, int] = field(default_factory=dict)  # item_id -> output line number
    rejected: dict[str, tuple[str, bool]] = field(default_factory=dict)  # item_id -> (reason, content)

    def take(self, record: OutputRecord | LineProblem) -> np.ndarray | None:
        """The record's row if it is accepted; otherwise notes why not and returns None."""
        self.outcome.results_count += 1
        if isinstance(record, OutputRecord):
            self.outcome.billed_tokens += record.tokens
        reason = _rejection(record, self.items, self.accepted)
        if reason is None:
            assert isinstance(record, OutputRecord)
            self.accepted[record.custom_id] = record.line_no
            return record.embedding
        self.outcome.problems.append(f"batch {self.batch_id} output line {record.line_no}: {reason}")
        if isinstance(record, OutputRecord) and record.custom_id not in self.items \
                and len(self.outcome.unknown_custom_ids) < UNKNOWN_IDS_KEPT:
            self.outcome.unknown_custom_ids.append(record.custom_id)
        if record.custom_id is not None and record.custom_id in self.items:
            content = isinstance(record, LineProblem) and record.content
            self.rejected.setdefault(record.custom_id, (f"output line {record.line_no}: {reason}", content))
        return None

    def pages(self, records: Iterable[OutputRecord | LineProblem], *, dimensions: int, model: str,
              revision: str) -> Iterator[RecordPage]:
        """Accepted records in output-file order, PAGE_SIZE at a time."""
        ids: list[str] = []
        rows: list[np.ndarray] = []
        for record in records:
            row = self.take(record)
            if row is None:
                continue
            ids.append(record.custom_id)
            rows.append(row)
            if len(ids) == PAGE_SIZE:
                yield _page(ids, rows, self.items, dimensions, model, revision)
                ids, rows = [], []
        if ids:
            yield _page(ids, rows, self.items, dimensions, model, revision)


def ingest_finished_batch(ctx: StepContext, summary: BatchSummary, batch: ProviderBatch,
                          kind: ItemKind) -> IngestOutcome:
    """Ingest a completed, expired or cancelled batch: a delta of whatever its output file holds (with
    the width and model the batch asked for), every other item released with its reason and cause."""
    batch_id = summary.batch_id
    model = summary.model or ctx.provider.model
    dimensions = summary.dimensions or ctx.provider.dimensions
    outcome = IngestOutcome()
    items = batch_items(ctx, kind, batch_id)
    failures = _error_file(ctx, batch)
    reading = _Reading(batch_id, items, outcome)
    prefix = delta_prefix(kind.database, batch_id)
    if batch.output_file_id is not None:
        try:
            with ctx.provider.open_file(batch.output_file_id) as chunks:
                records = iter_output_records(chunks, dimensions=dimensions)
                pages = reading.pages(records, dimensions=dimensions, model=model,
                                      revision=revision_of(summary.submitted_at, batch_id))
                first = next(pages, None)
                if first is not None:
                    manifest = write_snapshot(ctx.objects, prefix, _chain(first, pages),
                                              collection=kind.database, dimensions=dimensions, model=model,
                                              profile="flat")
                    for _ in pages:  # a rerun's delta existed already: still account for every line
                        pass
                    outcome.delta_key, outcome.embedding_count = prefix, manifest.count
        except UnknownProviderFileError:
            _output_gone(ctx, prefix, reading)

    for problem in outcome.problems:
        logger.warning("rejected output line", extra={"batch_id": batch_id, "problem": problem})
    _release(ctx, batch_id, _release_reasons(reading, failures, batch), outcome)
    return outcome


def _chain(first: RecordPage, rest: Iterator[RecordPage]) -> Iterator[RecordPage]:
    yield first
    yield from rest


def _error_file(ctx: StepContext, batch: ProviderBatch) -> dict[str, RequestFailure]:
    """The error file's reasons; a gone error file loses only them (the items still go back)."""
    if batch.error_file_id is None:
        return {}
    try:
        with ctx.provider.open_file(batch.error_file_id) as chunks:
            return parse_error_file(chunks)
    except UnknownProviderFileError:
        logger.warning("error file gone; its reasons are lost", extra={"file_id": batch.error_file_id})
        return {}


def _output_gone(ctx: StepContext, prefix: str, reading: _Reading) -> None:
    """A 404 on the output file: if an earlier run wrote this batch's delta, its ids are the accepted
    ones (the delta goes on to be published); otherwise nothing of the output can be had."""
    manifest = existing_manifest(ctx.objects, prefix)
    if manifest is None:
        reading.outcome.output_gone = True
        return
    with tempfile.TemporaryDirectory(prefix="delta-ids-") as tmp:
        delta = materialize(ctx.objects, manifest.key, Path(tmp) / "delta")
        try:
            for page in iter_pages(delta, manifest.collection):
                reading.accepted.update((item_id, 0) for item_id in page.ids)
        finally:
            shutil.rmtree(delta, ignore_errors=True)
    reading.outcome.delta_key, reading.outcome.embedding_count = prefix, manifest.count


def _release(ctx: StepContext, batch_id: str, reasons: dict[str, tuple[str, bool]],
             outcome: IngestOutcome) -> None:
    outcome.released = {item_id: reason for item_id, (reason, _) in reasons.items()}
    for cause, content in ((ReleaseCause.CONTENT, True), (ReleaseCause.PROVIDER, False)):
        group = {item_id: reason for item_id, (reason, blamed) in reasons.items() if blamed is content}
        if group:
            ctx.ledger.release_items(batch_id, group, cause=cause,
                                     provider_retry_limit=ctx.settings.max_provider_retries)
    if reasons:
        logger.info("released items back to NONE", extra={
            "batch_id": batch_id, "released": len(reasons),
            "sample": dict(list(outcome.released.items())[:5])})


def _rejection(record: OutputRecord | LineProblem, items: dict[str, LeanItem],
               accepted: dict[str, int]) -> str | None:
    if isinstance(record, LineProblem):
        who = f"custom_id {record.custom_id!r}: " if record.custom_id else ""
        return who + record.reason
    if record.custom_id not in items:
        return f"unknown custom_id {record.custom_id!r} (not an item of this batch)"
    if record.custom_id in accepted:
        return (f"custom_id {record.custom_id!r} repeats line {accepted[record.custom_id]}; "
                "the first one is kept")
    return None


def _release_reasons(reading: _Reading, failures: dict[str, RequestFailure], batch: ProviderBatch
                     ) -> dict[str, tuple[str, bool]]:
    """item_id -> (reason, blamed on its content) for every PENDING item without an accepted record."""
    if reading.outcome.output_gone:
        missing = OUTPUT_GONE
    elif batch.status in _NEVER_RAN:
        missing = _NEVER_RAN[batch.status]
    elif batch.output_file_id is None:
        missing = "the completed batch has no output file"
    else:
        missing = "missing from the output file"
    reasons = {}
    for item_id, item in reading.items.items():
        if item_id in reading.accepted or item.status is not EmbeddingStatus.PENDING:
            continue
        if item_id in failures:
            failure = failures[item_id]
            reasons[item_id] = (f"error file: {failure.reason}", failure.content)
        else:
            reasons[item_id] = reading.rejected.get(item_id, (missing, False))
    return reasons


def _page(ids: list[str], vectors: list[np.ndarray], items: dict[str, LeanItem], dimensions: int,
          model: str, revision: str) -> RecordPage:
    embeddings = np.asarray(vectors, dtype=np.float32).reshape(len(ids), dimensions)
    # The revision orders this record against other copies of its id (snapshots/revisions.py).
    # metadata_version orders this record's living metadata against metadata updates (issue 23).
    metadatas = [{**items[i].metadata, "model": model, REVISION: revision,
                  VERSION_KEY: items[i].metadata_version} for i in ids]
    return RecordPage(ids=list(ids), embeddings=embeddings, metadatas=metadatas,
                      documents=[items[i].text for i in ids])
