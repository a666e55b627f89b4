"""Importing a receipts JSONL file: validate every record, turn good receipts into embedding items, and
add them to the item ledger. A bad record is reported and skipped; it never stops the good ones.

Import is idempotent: item ids are deterministic and the ledger only inserts ids it does not have,
so importing the same file again adds nothing (see ImportReport.items_already_present).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from embedding_ingest.receipts.context import EDGE, line_context_parts, word_contexts
from embedding_ingest.receipts.exceptions import ReceiptFileError
from embedding_ingest.receipts.models import Receipt
from embedding_ingest.receipts.validation import (
    RecordError,
    decode_record,
    readable_receipt_id,
    validate_record,
)
from embedding_ingest.stores.ports import ItemLedger
from embedding_ingest.stores.records import EmbeddingItem, ItemKind
from embedding_ingest.tokens import fit_with_context

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


class ImportReport(BaseModel):
    """Result of import_receipts; field order is the stable key order of `--output json`."""

    source_file: str
    records_read: int
    receipts_imported: int  # passed validation; their items are now in the ledger (new or not)
    receipts_rejected: int
    duplicate_records: int
    lines_added: int
    words_added: int
    items_already_present: int
    errors: list[RecordError]
    tokens: int = 0  # cl100k_base tokens of every item read (new or already present)
    truncated_items: int = 0  # items whose text was shortened to the 8,192-token input limit


def read_receipts(path: Path | str) -> ImportParse:
    """Validate every record of a JSONL file. Raises ReceiptFileError only if the file cannot be read."""
    path = Path(path)
    receipts: list[Receipt] = []
    errors: list[RecordError] = []
    records_read = rejected = duplicates = 0
    # (image_id, receipt_number) -> (line number, canonical JSON) of the receipt accepted first
    accepted: dict[tuple[str, int], tuple[int, str]] = {}
    for line_number, raw in _file_lines(path):
        records_read += 1
        record, problems = decode_record(raw, line_number)
        if record is not None:
            outcome = validate_record(record, line_number)
            if isinstance(outcome, Receipt):
                key = (outcome.image_id, outcome.receipt_number)
                content = json.dumps(record, sort_keys=True, separators=(",", ":"))
                first = accepted.get(key)
                if first is None:
                    accepted[key] = (line_number, content)
                    receipts.append(outcome)
                    continue
                if first[1] == content:
                    duplicates += 1
                    continue
                problems = [_conflicting_duplicate(record, line_number, first[0])]
            else:
                problems = outcome
        rejected += 1
        errors.extend(problems)
    return ImportParse(records_read=records_read, receipts=receipts, errors=errors,
                       rejected_records=rejected, duplicate_records=duplicates)


def build_items(receipt: Receipt) -> list[EmbeddingItem]:
    """Every line, then every word, of a receipt as an item to embed (text with layout context)."""
    common: dict[str, Any] = {"image_id": receipt.image_id, "receipt_id": receipt.receipt_number}
    # Chroma refuses None metadata values, so unknown values are left out rather than nulled.
    if receipt.merchant_name is not None:
        common["merchant_name"] = receipt.merchant_name
    if receipt.source is not None:
        common["source"] = receipt.source

    items: list[EmbeddingItem] = []
    line_parts = line_context_parts(receipt)
    for line in receipt.lines:
        metadata = {**common, "line_id": line.line_id, "text": line.text,
                    **line.geometry.model_dump()}
        above, own, below = line_parts[line.line_id]
        fitted = fit_with_context([above], own, [below], separator="\n")
        items.append(EmbeddingItem(
            item_id=receipt.line_item_id(line), kind=ItemKind.LINE, image_id=receipt.image_id,
            receipt_number=receipt.receipt_number, line_id=line.line_id, text=line.text,
            embed_text=fitted.text, metadata=metadata, tokens=fitted.tokens, truncated=fitted.truncated,
        ))
    neighbours = word_contexts(receipt)
    for word in receipt.words:
        context = neighbours[word.word_id]
        metadata = {**common, "line_id": word.line_id, "word_id": word.word_id, "text": word.text,
                    **word.geometry.model_dump(), "left": context.left[0], "right": context.right[0]}
        fitted = fit_with_context(context.before, word.text, context.right, separator=" ")
        items.append(EmbeddingItem(
            item_id=receipt.word_item_id(word), kind=ItemKind.WORD, image_id=receipt.image_id,
            receipt_number=receipt.receipt_number, line_id=word.line_id, word_id=word.word_id,
            text=word.text, embed_text=fitted.text, metadata=metadata, tokens=fitted.tokens,
            truncated=fitted.truncated,
        ))
    return items


def import_receipts(path: Path | str, ledger: ItemLedger) -> ImportReport:
    """Read, validate and add every good receipt's items to `ledger`; safe to run again."""
    parse = read_receipts(path)
    lines_added = words_added = total_items = tokens = truncated = 0
    for start in range(0, len(parse.receipts), RECEIPTS_PER_LEDGER_WRITE):
        chunk = parse.receipts[start:start + RECEIPTS_PER_LEDGER_WRITE]
        items = [item for receipt in chunk for item in build_items(receipt)]
        total_items += len(items)
        tokens += sum(item.tokens or 0 for item in items)
        truncated += sum(item.truncated for item in items)
        lines_added += ledger.add_items([item for item in items if item.kind is ItemKind.LINE])
        words_added += ledger.add_items([item for item in items if item.kind is ItemKind.WORD])
    return ImportReport(
        source_file=str(path),
        records_read=parse.records_read,
        receipts_imported=len(parse.receipts),
        receipts_rejected=parse.rejected_records,
        duplicate_records=parse.duplicate_records,
        lines_added=lines_added,
        words_added=words_added,
        items_already_present=total_items - lines_added - words_added,
        errors=parse.errors,
        tokens=tokens,
        truncated_items=truncated,
    )


def _file_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, bytes) of each non-blank line; decoding is per line, so one bad line
    cannot hide the others."""
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


def _conflicting_duplicate(record: dict[str, Any], line_number: int, first_line: int) -> RecordError:
    number = record.get("receipt_number") or 1
    return RecordError(
        line_number=line_number, receipt_id=readable_receipt_id(record), field="receipt_id",
        problem=f"receipt {number} of this receipt_id was already read at line {first_line} with "
                "different content; the first one is kept",
    )


__all__ = ["EDGE", "ImportParse", "ImportReport", "build_items", "import_receipts", "read_receipts"]
