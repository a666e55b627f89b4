"""Embedding text with layout context, as the original system built it.

Visual rows: two boxes share a row when either's vertical centre lies within the other's y-span.
That pairwise rule is not transitive (on skewed scans a chain of slightly offset boxes would link
several printed rows into one), so rows are formed by a single sweep instead:
  1. sort boxes top to bottom by vertical centre (ties: left edge, then id), which makes the result
     independent of input order;
  2. the first box opens a row and is its *seed*; each next box joins the open row when it shares a
     row with the seed, otherwise it opens a new row with itself as seed.
Rows therefore partition the boxes (membership is an equivalence, hence transitive), a row never
grows beyond its seed's reach, and rows come out top to bottom. Within a row, boxes run left to right
(left edge, then right edge, then id).

Line text:  "{row above}\\n{line text}\\n{row below}", a row rendered as its lines' texts joined by
            " ", and EDGE standing for a missing row above the first / below the last row.
Word text:  "L2 L1 word R1 R2", the two nearest words on each side within the word's row, EDGE
            padding where a side has fewer than two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from embedding_ingest.receipts.models import PixelBox, Receipt, ReceiptLine, ReceiptWord

EDGE = "<EDGE>"
WORD_NEIGHBOURS_PER_SIDE = 2

T = TypeVar("T")


def shares_row(a: PixelBox, b: PixelBox) -> bool:
    """The original system's rule: either box's vertical centre lies within the other's y-span."""
    return b.contains_y(a.center_y) or a.contains_y(b.center_y)


def group_rows(items: Sequence[T], box: Callable[[T], PixelBox], item_id: Callable[[T], int]
               ) -> list[list[T]]:
    """Partition `items` into visual rows, top to bottom, each row left to right (see module doc)."""

    def sweep_key(item: T) -> tuple[float, float, int]:
        b = box(item)
        return (b.center_y, b.x0, item_id(item))

    rows: list[list[T]] = []
    seed: PixelBox | None = None
    for item in sorted(items, key=sweep_key):
        b = box(item)
        if seed is not None and shares_row(seed, b):
            rows[-1].append(item)
        else:
            rows.append([item])
            seed = b

    def reading_key(item: T) -> tuple[float, float, int]:
        b = box(item)
        return (b.x0, b.x1, item_id(item))

    return [sorted(row, key=reading_key) for row in rows]


def line_rows(lines: Sequence[ReceiptLine]) -> list[list[ReceiptLine]]:
    return group_rows(lines, lambda line: line.bbox, lambda line: line.line_id)


def word_rows(words: Sequence[ReceiptWord]) -> list[list[ReceiptWord]]:
    # word_id alone is unique within a receipt, so it settles every tie.
    return group_rows(words, lambda word: word.bbox, lambda word: word.word_id)


def render_row(row: Sequence[ReceiptLine]) -> str:
    return " ".join(line.text for line in row)


@dataclass(frozen=True, slots=True)
class WordContext:
    """A word's two nearest neighbours each side (nearest first), EDGE where there are none."""

    left: tuple[str, str]
    right: tuple[str, str]

    def embed_text(self, text: str) -> str:
        return " ".join((self.left[1], self.left[0], text, self.right[0], self.right[1]))

    @property
    def before(self) -> tuple[str, str]:
        """The left neighbours in reading order (farthest first), as embed_text places them."""
        return self.left[1], self.left[0]


def line_context_parts(receipt: Receipt) -> dict[int, tuple[str, str, str]]:
    """line_id -> (row above, line text, row below): the parts of its embedding text."""
    rows = line_rows(receipt.lines)
    rendered = [render_row(row) for row in rows]
    parts: dict[int, tuple[str, str, str]] = {}
    for index, row in enumerate(rows):
        above = rendered[index - 1] if index > 0 else EDGE
        below = rendered[index + 1] if index + 1 < len(rows) else EDGE
        for line in row:
            parts[line.line_id] = (above, line.text, below)
    return parts


def line_contexts(receipt: Receipt) -> dict[int, str]:
    """line_id -> embedding text of that line."""
    return {line_id: "\n".join(parts) for line_id, parts in line_context_parts(receipt).items()}


def word_contexts(receipt: Receipt) -> dict[int, WordContext]:
    """word_id -> its neighbours within its visual row."""
    contexts: dict[int, WordContext] = {}
    per_side = WORD_NEIGHBOURS_PER_SIDE
    for row in word_rows(receipt.words):
        texts = [word.text for word in row]
        for position, word in enumerate(row):
            left = list(reversed(texts[max(0, position - per_side):position]))
            right = texts[position + 1:position + 1 + per_side]
            contexts[word.word_id] = WordContext(
                left=_pad(left, per_side),
                right=_pad(right, per_side),
            )
    return contexts


def _pad(neighbours: list[str], size: int) -> tuple[str, str]:
    padded = neighbours + [EDGE] * (size - len(neighbours))
    return padded[0], padded[1]
