"""Synthetic receipts for `make bench-scale` (issue 21), made at run time from the repository's SROIE
receipts (tests/data/receipts-sroie.jsonl), never from outside the repository.

Receipt j of publish n is re-issued as `scale-p{n:02d}-{j:05d}`: the layout (size, line ids and boxes,
fields) of SROIE receipt j mod 400, each line's text drawn from the pool of all 22,227 SROIE lines with
its digits drawn anew. A line's embedded text includes its neighbours' (receipts/context.py), so nearly
every one of a million lines embeds a different text: the index holds distinct vectors, as a real
collection does, not 45 copies of each receipt. Deterministic: the same (publish, receipt) gives the
same record on every run. Words are left out: only the line workflow runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pipeline import SROIE_RECEIPTS

from embedding_ingest.receipts.ids import line_item_id

_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


class ReceiptMaker:
    """Writes one publish's synthetic receipts, `lines` lines in all (the last receipt cut to fit)."""

    def __init__(self, seed: int = 21) -> None:
        text = SROIE_RECEIPTS.read_text(encoding="utf-8")
        self.templates = [json.loads(line) for line in text.splitlines()]
        self.pool = [line["text"] for receipt in self.templates for line in receipt["lines"]]
        self.seed = seed

    def receipts(self, publish: int, lines: int) -> Iterator[dict]:
        """Receipt records (the importer's JSONL shape) holding exactly `lines` lines."""
        left, j = lines, 0
        while left > 0:
            template = self.templates[j % len(self.templates)]
            rng = np.random.default_rng((self.seed, publish, j))
            kept = template["lines"][:left]
            texts = rng.integers(0, len(self.pool), len(kept))
            yield {"receipt_id": image_id(publish, j), "source": "bench-scale synthetic",
                   "origin": f"{template['receipt_id']} re-issued (bench/scale_receipts.py)",
                   "width": template["width"], "height": template["height"],
                   "lines": [{"line_id": line["line_id"], "bbox": line["bbox"],
                              "text": _new_digits(self.pool[int(t)], rng)}
                             for line, t in zip(kept, texts, strict=True)],
                   "words": [], "fields": template["fields"]}
            left -= len(kept)
            j += 1

    def write(self, path: Path, publish: int, lines: int) -> list[str]:
        """Write the receipts of `publish` to `path` (JSONL); returns their line item ids, in order."""
        ids: list[str] = []
        with path.open("w", encoding="utf-8") as out:
            for record in self.receipts(publish, lines):
                out.write(json.dumps(record) + "\n")
                ids.extend(line_item_id(record["receipt_id"], 1, line["line_id"]) for line in record["lines"])
        return ids


def image_id(publish: int, receipt: int) -> str:
    """The receipt id of synthetic receipt `receipt` of publish `publish` (both from 0)."""
    return f"scale-p{publish:02d}-{receipt:05d}"


def _new_digits(text: str, rng: np.random.Generator) -> str:
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()
    digits = (raw >= ord("0")) & (raw <= ord("9"))
    raw[digits] = _DIGITS[rng.integers(0, 10, int(digits.sum()))]
    return raw.tobytes().decode("utf-8")
