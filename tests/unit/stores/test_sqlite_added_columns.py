"""A ledger written before issue 11 gains the items' tokens/truncated columns when next opened."""

from __future__ import annotations

import sqlite3

from embedding_ingest.stores.records import EmbeddingItem, ItemKind
from embedding_ingest.stores.sqlite_base import SCHEMA
from embedding_ingest.stores.sqlite_ledger import SqliteLedger


def test_an_older_ledger_gains_the_new_item_columns_and_keeps_its_items(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    old_schema = SCHEMA.replace(",\n    tokens INTEGER,\n    truncated INTEGER NOT NULL DEFAULT 0", "")
    assert old_schema != SCHEMA
    with sqlite3.connect(path) as conn:
        conn.executescript(old_schema)
        conn.execute("INSERT INTO items (item_id, kind, status, attempts, image_id, receipt_number, "
                     "line_id, text, embed_text, metadata) "
                     "VALUES ('old', 'line', 'NONE', 0, 'img', 1, 1, 't', 't', '{}')")
    ledger = SqliteLedger(path)
    try:
        old = ledger.get_items(["old"])["old"]
        assert (old.tokens, old.truncated) == (None, False)
        ledger.add_items([EmbeddingItem(item_id="new", kind=ItemKind.LINE, image_id="img", receipt_number=1,
                                        line_id=2, text="t", embed_text="t", tokens=1, truncated=True)])
        new = ledger.get_items(["new"])["new"]
        assert (new.tokens, new.truncated) == (1, True)
    finally:
        ledger.close()
