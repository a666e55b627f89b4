"""Receipts: validated input records, deterministic item ids, and embedding text with layout context."""

from embedding_ingest.receipts.context import EDGE
from embedding_ingest.receipts.ids import ItemRef, line_item_id, parse_item_id, word_item_id
from embedding_ingest.receipts.importer import (
    ImportParse,
    ImportReport,
    build_items,
    import_receipts,
    read_receipts,
)
from embedding_ingest.receipts.models import Receipt, ReceiptLine, ReceiptWord
from embedding_ingest.receipts.validation import RecordError

__all__ = [
    "EDGE",
    "ImportParse",
    "ImportReport",
    "ItemRef",
    "Receipt",
    "ReceiptLine",
    "ReceiptWord",
    "RecordError",
    "build_items",
    "import_receipts",
    "line_item_id",
    "parse_item_id",
    "read_receipts",
    "word_item_id",
]
