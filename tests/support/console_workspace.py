"""A workspace for the web console's tests: real receipts (one line's OCR text holding HTML and script),
one SUCCEEDED line execution that published a snapshot, one FAILED word execution whose error cause
holds script too, and the console app over the workspace's own ports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline import Workspace, make_workspace, receipts_file

from embedding_ingest.console.api import Console
from embedding_ingest.console.app import create_app
from embedding_ingest.console.sources import LocalSource
from embedding_ingest.stores.records import ItemKind

# If any of these ran, window.__xss would be set: the tests check it never is.
HOSTILE_TEXT = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> TOTAL RM 9.99'
HOSTILE_CAUSE = 'ledger offline <script>window.__xss=3</script><b>bold?</b>'
SUCCEEDED, FAILED = "line-succeeded", "word-failed"


class ReceiptStoreOffline(Exception):
    """The error the failed execution's first task raises."""


def _refuse(_payload: dict, _ctx) -> dict:
    raise ReceiptStoreOffline(HOSTILE_CAUSE)


def hostile_receipts(tmp_path: Path, count: int = 3) -> Path:
    """`count` real receipts; the first line of the first one is replaced by HOSTILE_TEXT."""
    path = receipts_file(tmp_path, count)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    records[0]["lines"][0]["text"] = HOSTILE_TEXT
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@dataclass
class ConsoleWorkspace:
    workspace: Workspace

    def console(self, *, allow_actions: bool = False, token: str | None = None) -> Console:
        ws = self.workspace
        return Console(source=LocalSource(ws.ledger), ledger=ws.ledger, objects=ws.objects,
                       settings=ws.settings, allow_actions=allow_actions, token=token)

    def app(self, **kwargs):
        return create_app(self.console(**kwargs))


def console_workspace(tmp_path: Path) -> ConsoleWorkspace:
    """Receipts imported, lines submitted and published by SUCCEEDED, and FAILED run for words."""
    ws = make_workspace(tmp_path)
    ws.import_receipts(hostile_receipts(tmp_path))
    ws.submit(ItemKind.LINE)
    ok = ws.run(ItemKind.LINE, name=SUCCEEDED)
    assert ok.status.value == "SUCCEEDED", ok
    failed = ws.run(ItemKind.WORD, name=FAILED, overrides={"embedding-list-pending": _refuse})
    assert failed.status.value == "FAILED", failed
    return ConsoleWorkspace(ws)
