"""Validated receipts: what the importer hands on once a record has passed every check.

Geometry is kept twice: the pixel box as OCR'd (origin top-left, y down) and the normalised box of the
original system (fractions of the image, origin bottom-left, y up):
    x = x0 / W,  y = 1 - y1 / H,  width = (x1 - x0) / W,  height = (y1 - y0) / H
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from embedding_ingest.receipts.ids import line_item_id, word_item_id


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PixelBox(_Frozen):
    """Pixel box, origin top-left, y growing downward; x0 < x1 and y0 < y1."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def center_y(self) -> float:
        return (self.y0 + self.y1) / 2

    def contains_y(self, y: float) -> bool:
        return self.y0 <= y <= self.y1


class NormalizedBox(_Frozen):
    """Fractions of the image, origin bottom-left (y = bottom edge of the box)."""

    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    width: float = Field(gt=0, le=1)
    height: float = Field(gt=0, le=1)

    @classmethod
    def from_pixels(cls, box: PixelBox, image_width: float, image_height: float) -> NormalizedBox:
        return cls(
            x=box.x0 / image_width,
            y=1 - box.y1 / image_height,
            width=(box.x1 - box.x0) / image_width,
            height=(box.y1 - box.y0) / image_height,
        )


LabelStatus = Literal["validated", "invalid", "pending", "needs_review"]
LABEL_STATUSES: tuple[str, ...] = ("validated", "invalid", "pending", "needs_review")


class WordLabel(_Frozen):
    """One label on a word or line (issue 23), as a label-validation system reports it. `label` is
    upper case A-Z, 0-9 and _ (it becomes the metadata key `label_<LABEL>`); `validated_at` is the
    ISO-8601 text as given."""

    label: str
    status: LabelStatus
    proposed_by: str | None = None
    validated_at: str | None = None


class Place(_Frozen):
    """What a place lookup found for the receipt's merchant (issue 23); any part may be unknown."""

    merchant_name: str | None = None
    phone: str | None = None
    address: str | None = None
    website: str | None = None


class ReceiptLine(_Frozen):
    line_id: int = Field(ge=0)
    text: str
    bbox: PixelBox
    geometry: NormalizedBox
    section: str | None = None  # "header", "items", "totals", ... (published as section_label)


class ReceiptWord(_Frozen):
    word_id: int = Field(ge=0)
    line_id: int = Field(ge=0)
    text: str
    bbox: PixelBox
    geometry: NormalizedBox
    labels: tuple[WordLabel, ...] | None = None  # None: not given (the ledger's labels are kept)


class ReceiptFields(_Frozen):
    """Key fields labelled on the receipt; any may be unknown."""

    company: str | None = None
    date: str | None = None
    address: str | None = None
    total: str | None = None


class Receipt(_Frozen):
    """One receipt. `image_id` is the record's receipt_id; several receipts may share an image."""

    image_id: str
    receipt_number: int = Field(default=1, ge=0)
    width: float = Field(gt=0)
    height: float = Field(gt=0)
    source: str | None = None
    origin: str | None = None
    image_path: str | None = None
    lines: tuple[ReceiptLine, ...]
    words: tuple[ReceiptWord, ...]
    fields: ReceiptFields = ReceiptFields()
    place: Place | None = None

    @property
    def merchant_name(self) -> str | None:
        """The place lookup's merchant name when it has one, else the labelled company (issue 23)."""
        for name in (self.place.merchant_name if self.place else None, self.fields.company):
            if name and name.strip():
                return name.strip()
        return None

    def line_item_id(self, line: ReceiptLine) -> str:
        return line_item_id(self.image_id, self.receipt_number, line.line_id)

    def word_item_id(self, word: ReceiptWord) -> str:
        return word_item_id(self.image_id, self.receipt_number, word.line_id, word.word_id)
