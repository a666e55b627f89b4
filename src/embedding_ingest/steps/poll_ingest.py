"""The results half of polling: turn a finished provider batch's files into one delta snapshot.

Nothing requested is lost: every item of the batch either lands in the delta or is released back to
NONE with the reason (error file, rejected output line, missing from the output; lesson 10). Items
stay PENDING until their snapshot is published (lesson 7); mark_batches_complete moves them on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from embedding_ingest.providers.base import ProviderBatch, ProviderBatchStatus
from embedding_ingest.providers.batch_files import (
    LineProblem,
    OutputRecord,
    iter_output_records,
    parse_error_file,
)
from embedding_ingest.snapshots import RecordPage, write_snapshot
from embedding_ingest.snapshots.metadata_update import VERSION_KEY
from embedding_ingest.snapshots.revisions import REVISION, revision_of
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import PROBLEM_TEXT_LIMIT
from embedding_ingest.steps.keys import delta_prefix
from embedding_ingest.steps.logs import logger
from embedding_ingest.stores.records import BatchSummary, EmbeddingItem, EmbeddingStatus, ItemKind

PAGE_SIZE = 1000
UNKNOWN_IDS_KEPT = 1000  # on the batch summary; more are counted in the problems only


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

    def problems_for_result(self) -> dict[str, int | str | None]:
        first = self.problems[0] if self.problems else None
        if first is not None and len(first) > PROBLEM_TEXT_LIMIT:
            first = first[:PROBLEM_TEXT_LIMIT - 1] + "…"
        return {"problem_count": len(self.problems), "first_problem": first}


def batch_items(ctx: StepContext, kind: ItemKind, batch_id: str) -> dict[str, EmbeddingItem]:
    """Items this batch asked for that still count: PENDING, or SUCCESS from an earlier publish of the
    same results (so a rerun builds the same delta)."""
    items = {}
    for status in (EmbeddingStatus.PENDING, EmbeddingStatus.SUCCESS):
        items.update({i.item_id: i for i in ctx.ledger.find_items(kind, status, batch_id=batch_id)})
    return items


def ingest_finished_batch(ctx: StepContext, summary: BatchSummary, batch: ProviderBatch,
                          kind: ItemKind) -> IngestOutcome:
    batch_id = summary.batch_id
    outcome = IngestOutcome()
    items = batch_items(ctx, kind, batch_id)
    errors = parse_error_file(ctx.provider.download(batch.error_file_id)) if batch.error_file_id else {}
    output = ctx.provider.download(batch.output_file_id) if batch.output_file_id else b""

    accepted: dict[str, int] = {}  # item_id -> output line number
    rejected: dict[str, str] = {}
    # One pass: accepted vectors are kept as float32 rows (a fifth of the JSON text already in memory),
    # so the output is parsed once, not again to build the delta.
    vectors: list[np.ndarray] = []
    for record in iter_output_records(output, dimensions=ctx.provider.dimensions):
        outcome.results_count += 1
        if isinstance(record, OutputRecord):
            outcome.billed_tokens += record.tokens
        reason = _rejection(record, items, accepted)
        if reason is None:
            assert isinstance(record, OutputRecord)
            accepted[record.custom_id] = record.line_no
            vectors.append(np.asarray(record.embedding, dtype=np.float32))
            continue
        outcome.problems.append(f"batch {batch_id} output line {record.line_no}: {reason}")
        if isinstance(record, OutputRecord) and record.custom_id not in items \
                and len(outcome.unknown_custom_ids) < UNKNOWN_IDS_KEPT:
            outcome.unknown_custom_ids.append(record.custom_id)
        if record.custom_id is not None and record.custom_id in items:
            rejected.setdefault(record.custom_id, f"output line {record.line_no}: {reason}")

    for problem in outcome.problems:
        logger.warning("rejected output line", extra={"batch_id": batch_id, "problem": problem})

    outcome.released = _release_reasons(items, accepted, rejected, errors, batch)
    if outcome.released:
        ctx.ledger.release_items(batch_id, outcome.released)
        logger.info("released items back to NONE", extra={
            "batch_id": batch_id, "released": len(outcome.released),
            "sample": dict(list(outcome.released.items())[:5])})

    if accepted:
        prefix = delta_prefix(kind.database, batch_id)
        del output
        revision = revision_of(summary.submitted_at, batch_id)
        pages = _pages(list(accepted), vectors, items, ctx.provider.dimensions, ctx.provider.model,
                       revision)
        manifest = write_snapshot(ctx.objects, prefix, pages, collection=kind.database,
                                  dimensions=ctx.provider.dimensions, model=ctx.provider.model,
                                  profile="flat")
        outcome.delta_key = prefix
        outcome.embedding_count = manifest.count
    return outcome


def _rejection(record: OutputRecord | LineProblem, items: dict[str, EmbeddingItem],
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


def _release_reasons(items: dict[str, EmbeddingItem], accepted: dict[str, int], rejected: dict[str, str],
                     errors: dict[str, str], batch: ProviderBatch) -> dict[str, str]:
    if batch.status is ProviderBatchStatus.EXPIRED:
        missing = "batch expired before this request ran"
    elif batch.output_file_id is None:
        missing = "the completed batch has no output file"
    else:
        missing = "missing from the output file"
    reasons = {}
    for item_id, item in items.items():
        if item_id in accepted or item.embedding_status is not EmbeddingStatus.PENDING:
            continue
        if item_id in errors:
            reasons[item_id] = f"error file: {errors[item_id]}"
        else:
            reasons[item_id] = rejected.get(item_id, missing)
    return reasons


def _pages(ids: list[str], vectors: list[np.ndarray], items: dict[str, EmbeddingItem], dimensions: int,
           model: str, revision: str) -> Iterator[RecordPage]:
    """Accepted records in output-file order, a page at a time."""
    for start in range(0, len(ids), PAGE_SIZE):
        yield _page(ids[start:start + PAGE_SIZE], vectors[start:start + PAGE_SIZE], items, dimensions, model,
                    revision)


def _page(ids: list[str], vectors: list[np.ndarray], items: dict[str, EmbeddingItem], dimensions: int,
          model: str, revision: str) -> RecordPage:
    embeddings = np.asarray(vectors, dtype=np.float32).reshape(len(ids), dimensions)
    # The revision orders this record against other copies of its id (snapshots/revisions.py).
    # metadata_version orders this record's living metadata against metadata updates (issue 23).
    metadatas = [{**items[i].metadata, "model": model, REVISION: revision,
                  VERSION_KEY: items[i].metadata_version} for i in ids]
    return RecordPage(ids=list(ids), embeddings=embeddings, metadatas=metadatas,
                      documents=[items[i].text for i in ids])
