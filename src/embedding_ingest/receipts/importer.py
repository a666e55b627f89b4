"""Importing a receipts JSONL file: validate every record, turn good receipts into embedding items, and
sync them into the item ledger. A bad record is reported and skipped; a bad item (line or word) is
skipped with its reason and the rest of its receipt imported (validation.py).

Import is an incremental sync (issue 10; stores/receipt_sync.py): each item carries a content hash of
what is embedded, so importing the same file again changes nothing, a corrected receipt re-queues only
the items whose embedded text changed (their new vectors replace the old ones when published), and
items a receipt no longer has are deleted from the next published version. `sync=True` treats the
file as the whole truth: receipts the ledger has and the file lacks are deleted ("full" cleanup).
Each group of receipts is written atomically: a crash leaves whole receipts, and rerunning completes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from embedding_ingest.living_keys import metadata_hash
from embedding_ingest.providers.tokens import fit_with_context
from embedding_ingest.receipts.context import EDGE, line_context_parts, word_contexts
from embedding_ingest.receipts.exceptions import NotJsonlError, ReceiptFileError
from embedding_ingest.receipts.hashing import content_hash
from embedding_ingest.receipts.living import label_metadata, line_metadata, place_metadata
from embedding_ingest.receipts.models import Receipt
from embedding_ingest.receipts.validation import (
    DEFAULT_BOX_TOLERANCE,
    CheckedRecord,
    ClampedBox,
    RecordError,
    SkippedItem,
    check_record,
    decode_record,
    readable_receipt_id,
)
from embedding_ingest.stores.ports import ItemLedger
from embedding_ingest.stores.receipt_sync import ReceiptChanges
from embedding_ingest.stores.records import EmbeddingItem, ItemKind

RECEIPTS_PER_LEDGER_WRITE = 50  # bounds one ledger transaction (~3k items of real receipts)
_BOM = b"\xef\xbb\xbf"


class ImportParse(BaseModel):
    """What a receipts file holds: receipts that passed every check, and what was wrong with the rest."""

    model_config = ConfigDict(frozen=True)

    records_read: int  # non-blank lines of the file
    receipts: list[Receipt]
    errors: list[RecordError]
    rejected_records: int  # records with at least one error (a record may have several)
    duplicate_records: int  # exact repeats of an earlier record, skipped
    skipped_items: list[SkippedItem] = []
    clamped_boxes: list[ClampedBox] = []
    # receipts named by rejected records: `--sync` must not delete what it could not read
    rejected_keys: list[tuple[str, int]] = []
    unreadable_records: int = 0  # rejected records whose receipt_id could not be read


class ImportReport(BaseModel):
    """Result of import_receipts; field order is the stable key order of `--output json`."""

    source_file: str
    records_read: int
    receipts_imported: int  # passed validation; their items are now in the ledger (new or not)
    receipts_rejected: int
    duplicate_records: int
    lines_added: int
    words_added: int
    items_already_present: int  # unchanged items, left untouched (nothing is paid twice)
    errors: list[RecordError]
    tokens: int = 0  # cl100k_base tokens of every item read (new or already present)
    truncated_items: int = 0  # items whose text was shortened to the 8,192-token input limit
    lines_changed: int = 0  # back to NONE: re-embedded, replacing the published vector
    words_changed: int = 0
    lines_requeued_by_neighbours: int = 0  # changed only because a neighbouring row changed
    words_requeued_by_neighbours: int = 0
    lines_removed: int = 0  # no longer in their receipt: deleted from the next published version
    words_removed: int = 0
    receipts_deleted: list[str] = []  # "image_id#receipt_number" removed by `sync` (absent from the file)
    sync_deletions_refused: str | None = None  # why `sync` deleted nothing, when it refused
    items_skipped: int = 0
    boxes_clamped: int = 0
    skipped_items: list[SkippedItem] = []
    clamped_boxes: list[ClampedBox] = []
    # issue 23: items whose text is unchanged but whose living metadata changed; each becomes a metadata
    # update of the published snapshot (no provider call, no token), counted by what changed
    lines_metadata_changed: int = 0
    words_metadata_changed: int = 0
    items_relabelled: int = 0
    items_place_changed: int = 0
    items_section_changed: int = 0


def read_receipts(path: Path | str, *, tolerance: float = DEFAULT_BOX_TOLERANCE) -> ImportParse:
    """Validate every record of a JSONL file. Raises ReceiptFileError only if the file cannot be read."""
    path = Path(path)
    receipts: list[Receipt] = []
    errors: list[RecordError] = []
    skipped: list[SkippedItem] = []
    clamped: list[ClampedBox] = []
    rejected_keys: set[tuple[str, int]] = set()
    records_read = rejected = duplicates = unreadable = 0
    # (image_id, receipt_number) -> (line number, canonical JSON) of the receipt accepted first
    accepted: dict[tuple[str, int], tuple[int, str]] = {}
    for line_number, raw in file_lines(path):
        records_read += 1
        record, problems = decode_record(raw, line_number)
        if record is not None:
            outcome = check_record(record, line_number, tolerance=tolerance)
            if isinstance(outcome, CheckedRecord):
                receipt = outcome.receipt
                key = (receipt.image_id, receipt.receipt_number)
                content = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
                first = accepted.get(key)
                if first is None:
                    accepted[key] = (line_number, content)
                    receipts.append(receipt)
                    skipped.extend(outcome.skipped)
                    clamped.extend(outcome.clamped)
                    continue
                if first[1] == content:
                    duplicates += 1
                    continue
                problems = [_conflicting_duplicate(record, line_number, first[0])]
            else:
                problems = outcome
        rejected += 1
        errors.extend(problems)
        receipt_id = readable_receipt_id(record) if record is not None else None
        if receipt_id is None:
            unreadable += 1
        else:
            number = record.get("receipt_number") if record is not None else None
            rejected_keys.add((receipt_id, number if isinstance(number, int) else 1))
    return ImportParse(records_read=records_read, receipts=receipts, errors=errors,
                       rejected_records=rejected, duplicate_records=duplicates, skipped_items=skipped,
                       clamped_boxes=clamped, rejected_keys=sorted(rejected_keys),
                       unreadable_records=unreadable)


def build_items(receipt: Receipt, model: str | None = None) -> list[EmbeddingItem]:
    """Every line, then every word, of a receipt as an item to embed (text with layout context), each
    with the content hash of what is embedded (embed_text and `model`; receipts/hashing.py)."""
    # Chroma refuses None metadata values, so unknown values are left out rather than nulled.
    common: dict[str, Any] = {"image_id": receipt.image_id, "receipt_id": receipt.receipt_number,
                              **place_metadata(receipt)}
    if receipt.source is not None:
        common["source"] = receipt.source

    items: list[EmbeddingItem] = []
    line_parts = line_context_parts(receipt)
    words_valid: dict[int, set[str]] = {}
    for word in receipt.words:
        words_valid.setdefault(word.line_id, set()).update(
            label.label for label in word.labels or () if label.status == "validated")
    for line in receipt.lines:
        metadata = {**common, "line_id": line.line_id, "text": line.text,
                    **line.geometry.model_dump(),
                    **line_metadata(line.section, (), words_valid.get(line.line_id, ()))}
        above, own, below = line_parts[line.line_id]
        fitted = fit_with_context([above], own, [below], separator="\n")
        items.append(EmbeddingItem(
            item_id=receipt.line_item_id(line), kind=ItemKind.LINE, image_id=receipt.image_id,
            receipt_number=receipt.receipt_number, line_id=line.line_id, text=line.text,
            embed_text=fitted.text, metadata=metadata, tokens=fitted.tokens, truncated=fitted.truncated,
            # On the full, untruncated input (as agreed for issues 10/11): a change to the token fitting
            # alone must not make every long item look changed.
            content_hash=content_hash(fitted.full, model), metadata_hash=metadata_hash(metadata),
            labels_given=False,  # a receipt file gives no line labels (labels apply does)
        ))
    neighbours = word_contexts(receipt)
    for word in receipt.words:
        context = neighbours[word.word_id]
        metadata = {**common, "line_id": word.line_id, "word_id": word.word_id, "text": word.text,
                    **word.geometry.model_dump(), "left": context.left[0], "right": context.right[0],
                    **label_metadata(word.labels or ())}
        fitted = fit_with_context(context.before, word.text, context.right, separator=" ")
        items.append(EmbeddingItem(
            item_id=receipt.word_item_id(word), kind=ItemKind.WORD, image_id=receipt.image_id,
            receipt_number=receipt.receipt_number, line_id=word.line_id, word_id=word.word_id,
            text=word.text, embed_text=fitted.text, metadata=metadata, tokens=fitted.tokens,
            truncated=fitted.truncated, content_hash=content_hash(fitted.full, model),
            metadata_hash=metadata_hash(metadata), labels_given=word.labels is not None,
        ))
    return items


def import_receipts(path: Path | str, ledger: ItemLedger, *, model: str | None = None, sync: bool = False,
                    tolerance: float = DEFAULT_BOX_TOLERANCE) -> ImportReport:
    """Read, validate and sync every good receipt's items into `ledger` (module doc); safe to run
    again. `model` is the embedding model (part of each content hash); `sync` deletes the receipts the
    file lacks. Raises ReceiptFileError (unreadable file) and store errors; bad data never raises."""
    parse = read_receipts(path, tolerance=tolerance)
    report = ImportReport(
        source_file=str(path), records_read=parse.records_read, receipts_imported=len(parse.receipts),
        receipts_rejected=parse.rejected_records, duplicate_records=parse.duplicate_records,
        lines_added=0, words_added=0, items_already_present=0, errors=parse.errors,
        items_skipped=len(parse.skipped_items), boxes_clamped=len(parse.clamped_boxes),
        skipped_items=parse.skipped_items, clamped_boxes=parse.clamped_boxes)
    for start in range(0, len(parse.receipts), RECEIPTS_PER_LEDGER_WRITE):
        chunk = parse.receipts[start:start + RECEIPTS_PER_LEDGER_WRITE]
        built = [(r.image_id, r.receipt_number, build_items(r, model)) for r in chunk]
        report.tokens += sum(item.tokens or 0 for _, _, items in built for item in items)
        report.truncated_items += sum(item.truncated for _, _, items in built for item in items)
        _count(report, ledger.sync_receipts(built))
    if sync:
        _delete_absent(parse, ledger, report)
    return report


def delete_receipts(ledger: ItemLedger, image_ids: Sequence[str]) -> tuple[list[str], ImportReport]:
    """Remove every receipt of each image id from the ledger's active set (its items become DELETING,
    to leave the next published version). Returns the ids that had no receipt, and the counts."""
    report = ImportReport(source_file="", records_read=0, receipts_imported=0, receipts_rejected=0,
                          duplicate_records=0, lines_added=0, words_added=0, items_already_present=0,
                          errors=[])
    unknown = []
    for image_id in dict.fromkeys(image_ids):
        keys = ledger.receipt_keys(image_id)
        if not keys:
            unknown.append(image_id)
            continue
        _count(report, ledger.sync_receipts([(i, n, []) for i, n in keys]))
        report.receipts_deleted += [f"{i}#{n}" for i, n in keys]
    return unknown, report


def _delete_absent(parse: ImportParse, ledger: ItemLedger, report: ImportReport) -> None:
    if parse.unreadable_records:
        report.sync_deletions_refused = (
            f"{parse.unreadable_records} record(s) have no readable receipt_id, so the file may hold "
            "receipts this import could not see; fix them and sync again (nothing was deleted)")
        return
    present = {(r.image_id, r.receipt_number) for r in parse.receipts} | set(parse.rejected_keys)
    absent = [key for key in ledger.receipt_keys() if key not in present]
    for start in range(0, len(absent), RECEIPTS_PER_LEDGER_WRITE):
        chunk = absent[start:start + RECEIPTS_PER_LEDGER_WRITE]
        _count(report, ledger.sync_receipts([(i, n, []) for i, n in chunk]))
        report.receipts_deleted += [f"{i}#{n}" for i, n in chunk]


def _count(report: ImportReport, changes: Sequence[ReceiptChanges]) -> None:
    for change in changes:
        for kind, prefix in ((ItemKind.LINE, "lines"), (ItemKind.WORD, "words")):
            for name, ids in (("added", change.added), ("changed", change.changed),
                              ("removed", change.removed),
                              ("requeued_by_neighbours", change.requeued_by_neighbours),
                              ("metadata_changed", change.metadata_changed)):
                field = f"{prefix}_{name}"
                setattr(report, field, getattr(report, field) + change.count(ids, kind))
        report.items_already_present += change.unchanged
        report.items_relabelled += change.relabelled
        report.items_place_changed += change.place_changed
        report.items_section_changed += change.section_changed


def describe_metadata_changes(report: ImportReport) -> str | None:
    """One line on the metadata-only changes of an import ("12 words relabelled, 279 items' place
    corrected; no tokens needed"), or None when there were none."""
    if not report.lines_metadata_changed + report.words_metadata_changed:
        return None
    parts = [f"{n} {what}" for n, what in ((report.items_relabelled, "item(s) relabelled"),
                                           (report.items_place_changed, "item(s)' merchant/place corrected"),
                                           (report.items_section_changed, "line(s)' section changed")) if n]
    total = report.lines_metadata_changed + report.words_metadata_changed
    return f"{', '.join(parts) or f'{total} item(s) with new metadata'}; no tokens needed (metadata updates)"


def file_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, bytes) of each non-blank line of a JSONL file, a leading BOM dropped;
    decoding is per line, so one bad line cannot hide the others. Raises ReceiptFileError when the
    file cannot be opened."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ReceiptFileError(path, exc.strerror or str(exc)) from exc
    with handle:
        for line_number, raw in enumerate(handle, start=1):
            if line_number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            if raw.strip():
                yield line_number, raw


def require_json_records(path: Path | str) -> None:
    """Raise NotJsonlError when `path` has lines but none is a JSON object (nothing in it could be a
    receipt); return at its first JSON object line (a JSONL file: at once). An empty file passes (the
    import says it held no record). Raises ReceiptFileError when the file cannot be opened."""
    path = Path(path)
    lines, first = 0, (0, "")
    for line_number, raw in file_lines(path):
        record, problems = decode_record(raw, line_number)
        if record is not None:
            return
        lines += 1
        if lines == 1:
            first = (line_number, problems[0].problem if problems else "not a JSON object")
    if lines:
        raise NotJsonlError(path, lines, *first)


def _conflicting_duplicate(record: dict[str, Any], line_number: int, first_line: int) -> RecordError:
    number = record.get("receipt_number") or 1
    return RecordError(
        line_number=line_number, receipt_id=readable_receipt_id(record), field="receipt_id",
        problem=f"receipt {number} of this receipt_id was already read at line {first_line} with "
                "different content; the first one is kept",
    )


__all__ = ["EDGE", "ImportParse", "ImportReport", "build_items", "delete_receipts",
           "describe_metadata_changes",
           "import_receipts", "read_receipts", "require_json_records"]
