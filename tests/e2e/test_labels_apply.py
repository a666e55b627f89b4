"""Issue 23: `embedding-ingest labels apply FILE.jsonl` for a label-validation system that does not own the
receipt files: label changes reach the next published version as metadata updates (no provider
request), bad lines and unknown items are reported by line number and skipped, a rerun changes
nothing, and a later re-import of the receipt file (which gives no labels) keeps the applied labels."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline import make_workspace, receipts_file

from embedding_ingest.receipts.ids import line_item_id, word_item_id
from embedding_ingest.snapshots import iter_published_pages
from embedding_ingest.stores.records import ItemKind
from embedding_ingest.submission.labels import apply_labels

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "README.md"
README_SECTION = "## Labels, places and sections: metadata that changes without re-embedding"


def cli(ws, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROMA", "EMBEDDING", "DYNAMODB"))}
    env["EMBEDDING_INGEST_HOME"] = str(ws.settings.home)
    return subprocess.run([sys.executable, "-m", "embedding_ingest.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def metadata(ws, kind: ItemKind) -> dict[str, dict]:
    version = ws.ledger.get_published(kind.database)
    return {i: m for page in iter_published_pages(ws.objects, version, ws.settings)
            for i, m in zip(page.ids, page.metadatas, strict=True)}


def run_all(ws) -> None:
    for kind in ItemKind:
        assert ws.run_until_idle(kind)[-1].status.value == "SUCCEEDED"


def test_labels_apply_publishes_label_changes_without_re_embedding(tmp_path):
    source = receipts_file(tmp_path, 2)
    first = json.loads(source.read_text().splitlines()[0])
    ws = make_workspace(tmp_path / "ws")
    ws.import_receipts(source)
    for kind in ItemKind:
        ws.submit(kind, max_items_per_batch=1000)
    run_all(ws)
    asked = len(ws.ctx.provider.engine.list_batches())

    receipt, word, other_line = first["receipt_id"], first["words"][-1], first["lines"][0]
    total = {"label": "GRAND_TOTAL", "status": "validated", "proposed_by": "reviewer",
             "validated_at": "2026-12-07T03:00:00Z"}
    lines = [
        {"receipt_id": receipt, "line_id": word["line_id"], "word_id": word["word_id"], "labels": [total]},
        {"receipt_id": receipt, "line_id": other_line["line_id"],
         "labels": [{"label": "MERCHANT_NAME", "status": "validated"}]},
        {"receipt_id": receipt, "line_id": 0, "word_id": 0, "labels": [{"label": "DATE", "status": "ok"}]},
        {"receipt_id": "no-such-receipt", "line_id": 0, "labels": []},
        {"receipt_id": receipt, "line_id": 0, "word_id": 99_999, "labels": []},
    ]
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines[:2]) + "\n\n"
                    + "\n".join(json.dumps(line) for line in lines[2:]) + "\nnot json\n", encoding="utf-8")

    done = cli(ws, "labels", "apply", str(path), "--output", "json")
    assert done.returncode == 3, done.stderr  # some lines were rejected; the rest applied
    report = json.loads(done.stdout)
    assert (report["items_labelled"], report["words_relabelled"], report["tokens"]) == (2, 1, 0)
    # the labelled line, and the word's line (its words' validated labels changed), unless the same
    assert report["lines_relabelled"] == (1 if word["line_id"] == other_line["line_id"] else 2)
    assert [(p["line_number"], p["field"]) for p in report["problems"]] == [
        (4, "labels[0].status"), (5, "receipt_id"), (6, "word_id"), (7, "<line>")]
    assert "no word IMAGE#" in report["problems"][2]["problem"]
    assert report["metadata_batches"]

    run_all(ws)
    assert len(ws.ctx.provider.engine.list_batches()) == asked, "labels must not reach the provider"
    words, published_lines = metadata(ws, ItemKind.WORD), metadata(ws, ItemKind.LINE)
    labelled = words[word_item_id(receipt, 1, word["line_id"], word["word_id"])]
    assert (labelled["label_GRAND_TOTAL"], labelled["label_proposed_by"], labelled["label_validated_at"]) == (
        True, "reviewer", "2026-12-07T03:00:00Z")
    assert "GRAND_TOTAL" in published_lines[line_item_id(receipt, 1, word["line_id"])]["valid_labels"]
    own = published_lines[line_item_id(receipt, 1, other_line["line_id"])]
    assert own["label_MERCHANT_NAME"] is True and "MERCHANT_NAME" in own["valid_labels"]

    # The same file again, and the receipt file again (it has no labels): nothing changes.
    again = apply_labels(path, ws.ledger)
    assert (again.words_relabelled, again.lines_relabelled, again.metadata_batches) == (0, 0, [])
    reimported = ws.import_receipts(source)
    assert reimported.lines_metadata_changed + reimported.words_metadata_changed == 0
    version = ws.ledger.get_published("words").version
    run_all(ws)
    assert ws.ledger.get_published("words").version == version
    assert metadata(ws, ItemKind.WORD)[word_item_id(receipt, 1, word["line_id"], word["word_id"])][
        "label_GRAND_TOTAL"] is True

    # The README's example (section "Labels, places and sections"), verbatim, on this workspace.
    section = README.read_text(encoding="utf-8").split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    script, code = (re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)[0]
                    for language in ("bash", "python"))
    tools = tmp_path / "clone" / ".venv" / "bin"
    tools.mkdir(parents=True)
    (tools / "embedding-ingest").symlink_to(Path(sys.executable).parent / "embedding-ingest")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROMA", "EMBEDDING", "DYNAMODB"))}
    env.update(EMBEDDING_INGEST_HOME=str(ws.settings.home), LOCAL_PROVIDER_POLLS_PER_STAGE="0",
               EMBEDDING_DIMENSIONS=str(ws.settings.embedding_dimensions))  # as the workspace was made
    shell = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=tools.parents[1],
                           capture_output=True, text=True, timeout=600)
    assert shell.returncode == 0, (shell.stdout[-2000:], shell.stderr[-2000:])
    assert "1 word(s) relabelled" in shell.stdout and "no tokens needed" in shell.stdout
    python = subprocess.run([sys.executable, "-c", code], env=env, cwd=tools.parents[1], capture_output=True,
                            text=True, timeout=300)
    assert python.returncode == 0, python.stderr[-2000:]
    assert python.stdout.splitlines() == ["['25/12/2018'] reviewer", "1 word(s) with a validated DATE"]
    assert len(ws.ctx.provider.engine.list_batches()) == asked
