"""Checking one untrusted JSONL record and turning it into a Receipt, or into errors naming the fault.

Two levels of fault (issue 10: a receipt survives its worst item):
- record level: not JSON, no usable receipt_id or receipt_number, width/height not > 0, lines or words
  not arrays, duplicate line_id/word_id. Every such problem is reported as a RecordError naming the
  file line, the receipt id when readable, and the field path ("lines[3].line_id"); the record is
  rejected whole.
- item level: a line or word with a wrong shape, an unusable id, text that is blank, invisible-only or
  unencodable (receipts/text.py), a box that is inverted, unmeasurably small, or outside the image by
  more than the tolerance, a word naming a line the receipt lacks, a line's `section` or a word's
  `labels` that are malformed (receipts/labels_input.py). Only that item is skipped, with its reason
  (SkippedItem); words of a skipped line keep their place. A malformed part of `place` is left out
  and reported the same way (item "place"); the receipt keeps the rest.
Boxes outside the image by at most the tolerance (default 2% of the image side: several OCR engines
report boxes a pixel or so past the edge) are clamped to the image and reported (ClampedBox).
Text is normalised once here (NFC, lone surrogates -> U+FFFD, control characters removed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, computed_field

from embedding_ingest.receipts.exceptions import InvalidItemIdError
from embedding_ingest.receipts.ids import check_image_id, check_number, shortened
from embedding_ingest.receipts.labels_input import RawLabel, check_labels, check_place, check_section
from embedding_ingest.receipts.labels_input import json_type as _json_type
from embedding_ingest.receipts.models import (
    NormalizedBox,
    PixelBox,
    Receipt,
    ReceiptFields,
    ReceiptLine,
    ReceiptWord,
)
from embedding_ingest.receipts.problem_text import RECORD, describe, path_of, pixels
from embedding_ingest.receipts.text import normalize_text, text_problem


class RecordError(BaseModel):
    """One thing wrong with one input record."""

    model_config = ConfigDict(frozen=True)

    line_number: int  # 1-based line of the input file
    receipt_id: str | None  # None when the record has no readable receipt_id
    field: str
    problem: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def message(self) -> str:
        who = (f"receipt {shortened(self.receipt_id)!r}" if self.receipt_id is not None
               else "receipt id unreadable")
        return f"line {self.line_number} ({who}): {self.field}: {self.problem}"

    def __str__(self) -> str:
        return self.message


class SkippedItem(RecordError):
    """A line or word left out of an imported receipt; `field` is its path ("words[1]" or
    "words[1].text"), `item` says which ("word 3 of line 1")."""

    item: str


class ClampedBox(BaseModel):
    """A box slightly outside the image, moved onto its edge."""

    model_config = ConfigDict(frozen=True)

    line_number: int
    receipt_id: str
    field: str  # "words[0].bbox"
    original: list[float]
    clamped: list[float]


class CheckedRecord(BaseModel):
    """A record that passed every record-level check: its receipt (good items only) and what was left
    out or adjusted on the way."""

    model_config = ConfigDict(frozen=True)

    receipt: Receipt
    skipped: list[SkippedItem] = Field(default_factory=list)
    clamped: list[ClampedBox] = Field(default_factory=list)


DEFAULT_BOX_TOLERANCE = 0.02  # share of the image side a box may stick out and still be clamped


# -- the shape a record must have (types only; meaning is checked below) ------------------------
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown keys are tolerated, never used


class _RawItem(_Shape):
    line_id: StrictInt
    text: StrictStr
    bbox: list[Number]


class _RawLine(_RawItem):
    section: StrictStr | None = None


class _RawWord(_RawItem):
    word_id: StrictInt
    labels: list[RawLabel] | None = None


class _RawFields(_Shape):
    company: StrictStr | None = None
    date: StrictStr | None = None
    address: StrictStr | None = None
    total: StrictStr | None = None


class _RawRecord(_Shape):
    receipt_id: StrictStr
    receipt_number: StrictInt | None = None  # absent or null: receipt 1
    width: Number
    height: Number
    source: StrictStr | None = None
    origin: StrictStr | None = None
    image_path: StrictStr | None = None
    lines: list[Any]  # each item is checked on its own (item-level faults skip only that item)
    words: list[Any]
    fields: _RawFields | None = None
    place: Any = None  # checked part by part: a bad part is left out, not the receipt


def decode_record(raw: bytes, line_number: int) -> tuple[dict[str, Any] | None, list[RecordError]]:
    """Bytes of one file line -> the JSON object, or the error saying why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [RecordError(line_number=line_number, receipt_id=None, field=RECORD,
                                  problem=f"not valid UTF-8 ({exc.reason} at byte {exc.start})")]
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [RecordError(line_number=line_number, receipt_id=None, field=RECORD,
                                  problem=f"not valid JSON ({exc.msg} at column {exc.colno})")]
    if not isinstance(value, dict):
        return None, [RecordError(line_number=line_number, receipt_id=None, field=RECORD,
                                  problem=f"must be a JSON object, got {_json_type(value)}")]
    return value, []


def readable_receipt_id(record: dict[str, Any]) -> str | None:
    value = record.get("receipt_id")
    return value if isinstance(value, str) else None


def validate_record(record: dict[str, Any], line_number: int) -> Receipt | list[RecordError]:
    """A Receipt (of the good items) when the record passes every record-level check, else every
    record-level error found. See check_record for what was skipped or clamped."""
    outcome = check_record(record, line_number)
    return outcome.receipt if isinstance(outcome, CheckedRecord) else outcome


def check_record(record: dict[str, Any], line_number: int, *, tolerance: float = DEFAULT_BOX_TOLERANCE
                 ) -> CheckedRecord | list[RecordError]:
    """The receipt of a record with its skipped items and clamped boxes, or its record-level errors."""
    receipt_id = readable_receipt_id(record)
    errors = _Collector(line_number, receipt_id)
    try:
        raw = _RawRecord.model_validate(record)
    except ValidationError as exc:
        for detail in exc.errors(include_url=False):
            errors.add(path_of(detail["loc"]), describe(detail))
        return errors.found

    _check_id(errors, "receipt_id", check_image_id, raw.receipt_id)
    receipt_number = 1 if raw.receipt_number is None else raw.receipt_number
    _check_id(errors, "receipt_number", check_number, "receipt_number", receipt_number)
    for name, size in (("width", raw.width), ("height", raw.height)):
        if size <= 0:
            errors.add(name, f"image {name} must be greater than 0, got {pixels(size)}")
    if errors.found:
        return errors.found

    items = _ItemChecker(errors, raw.width, raw.height, tolerance)
    place = check_place(raw.place, lambda field, problem: items.skip("place", "place", field, problem))
    lines = items.check_all(raw.lines, "lines", _RawLine)
    items.known_lines = {line.line_id for line in lines} | items.skipped_line_ids
    words = items.check_all(raw.words, "words", _RawWord)
    if errors.found:
        return errors.found
    try:
        receipt = _build_receipt(raw, receipt_number, lines, words).model_copy(update={"place": place})
    except ValidationError as exc:  # only reachable through float extremes the checks above miss
        errors.add(RECORD, f"cannot be represented: {exc.errors(include_url=False)[0]['msg']}")
        return errors.found
    return CheckedRecord(receipt=receipt, skipped=items.skipped, clamped=items.clamped)


class _ItemChecker:
    """Item-level checks; record-level faults among items (duplicate ids) go to `errors`."""

    def __init__(self, errors: _Collector, width: float, height: float, tolerance: float) -> None:
        self.errors = errors
        self.width, self.height, self.tolerance = width, height, tolerance
        self.skipped: list[SkippedItem] = []
        self.clamped: list[ClampedBox] = []
        self.skipped_line_ids: set[int] = set()
        self.known_lines: set[int] = set()  # line ids words may name (a skipped line's words stay)

    def skip(self, where: str, item: str, field: str, problem: str) -> None:
        self.skipped.append(SkippedItem(line_number=self.errors.line_number,
                                        receipt_id=self.errors.receipt_id, field=field or where,
                                        item=item, problem=problem))

    def check_all(self, raws: list[Any], name: str, shape: type[_RawItem]) -> list[Any]:
        kept, first_at = [], {}
        id_name = "line_id" if shape is _RawLine else "word_id"
        for index, value in enumerate(raws):
            where = f"{name}[{index}]"
            item_id = value.get(id_name) if isinstance(value, dict) else None
            if isinstance(item_id, int) and not isinstance(item_id, bool):
                if item_id in first_at:  # ids are the receipt's structure: a repeat rejects it
                    self.errors.add(f"{where}.{id_name}", f"duplicate {id_name} {item_id} "
                                                          f"(also at {name}[{first_at[item_id]}])")
                    continue
                first_at[item_id] = index
            item = self.check_one(value, where, shape)
            if item is not None:
                kept.append(item)
            elif shape is _RawLine and isinstance(item_id, int):
                self.skipped_line_ids.add(item_id)
        return kept

    def check_one(self, value: Any, where: str, shape: type[_RawItem]) -> _RawItem | None:
        label = where.replace("lines[", "line at lines[").replace("words[", "word at words[")
        try:
            item = shape.model_validate(value)
        except ValidationError as exc:
            detail = exc.errors(include_url=False)[0]
            self.skip(where, label, path_of((*where_loc(where), *detail["loc"])), describe(detail))
            return None
        label = (f"word {item.word_id} of line {item.line_id}" if isinstance(item, _RawWord)
                 else f"line {item.line_id}")
        for field, number in [("line_id", item.line_id)] + (
                [("word_id", item.word_id)] if isinstance(item, _RawWord) else []):
            try:
                check_number(field, number)
            except InvalidItemIdError as exc:
                self.skip(where, label, f"{where}.{field}", f"{exc.problem}, got {exc.value!r}")
                return None
        if isinstance(item, _RawWord) and item.line_id not in self.known_lines:
            self.skip(where, label, f"{where}.line_id", f"word_id {item.word_id} refers to line_id "
                                                        f"{item.line_id}, which no line of this receipt has")
            return None
        text = normalize_text(item.text)
        problem = text_problem(item.text, text)
        if problem is not None:
            self.skip(where, label, f"{where}.text", problem)
            return None
        box = self.check_box(where, label, item.bbox)
        if box is None:
            return None
        update: dict[str, Any] = {"text": text, "bbox": box}
        problem = None
        if isinstance(item, _RawLine) and item.section is not None:
            update["section"], problem = check_section(item.section)
            field = f"{where}.section"
        elif isinstance(item, _RawWord) and item.labels:
            update["labels"], field, problem = check_labels(item.labels, f"{where}.labels")
        if problem is not None:
            self.skip(where, label, field, problem)
            return None
        return item.model_copy(update=update)

    def check_box(self, where: str, label: str, bbox: list[float]) -> list[float] | None:
        field, width, height = f"{where}.bbox", self.width, self.height
        if len(bbox) != 4:
            self.skip(where, label, field, f"must be 4 numbers [x0, y0, x1, y1], got {len(bbox)}")
            return None
        x0, y0, x1, y1 = bbox
        shown = "[" + ", ".join(pixels(v) for v in bbox) + "]"
        if x0 >= x1 or y0 >= y1:
            axis = f"x0 ({pixels(x0)}) must be less than x1 ({pixels(x1)})" if x0 >= x1 else \
                f"y0 ({pixels(y0)}) must be less than y1 ({pixels(y1)})"
            self.skip(where, label, field, f"inverted box: {axis} in {shown}")
            return None
        slack_x, slack_y = self.tolerance * width, self.tolerance * height
        beyond = [f"{n} {pixels(v)} < 0" for n, v, s in (("x0", x0, slack_x), ("y0", y0, slack_y))
                  if v < -s]
        far_edges = (("x1", x1, "width", width, slack_x), ("y1", y1, "height", height, slack_y))
        beyond += [f"{n} {pixels(v)} > {ln} {pixels(lim)}" for n, v, ln, lim, s in far_edges if v > lim + s]
        if beyond:
            self.skip(where, label, field, f"box {shown} lies outside the {pixels(width)}x{pixels(height)} "
                                           f"image by more than {self.tolerance:.0%} ({'; '.join(beyond)})")
            return None
        clamped = [min(max(x0, 0.0), width), min(max(y0, 0.0), height),
                   min(max(x1, 0.0), width), min(max(y1, 0.0), height)]
        if clamped[0] >= clamped[2] or clamped[1] >= clamped[3] or \
                (clamped[2] - clamped[0]) / width == 0 or (clamped[3] - clamped[1]) / height == 0:
            self.skip(where, label, field,
                      f"box {shown} is too small to measure on a {pixels(width)}x{pixels(height)} image")
            return None
        if clamped != [float(v) for v in bbox]:
            self.clamped.append(ClampedBox(line_number=self.errors.line_number,
                                           receipt_id=self.errors.receipt_id or "", field=field,
                                           original=[float(v) for v in bbox], clamped=clamped))
        return clamped


def where_loc(where: str) -> tuple[str | int, ...]:
    name, index = where.rstrip("]").split("[")
    return name, int(index)


def _build_receipt(raw: _RawRecord, receipt_number: int, raw_lines: list[_RawLine],
                   raw_words: list[_RawWord]) -> Receipt:
    def place(bbox: list[float]) -> tuple[PixelBox, NormalizedBox]:
        box = PixelBox(x0=bbox[0], y0=bbox[1], x1=bbox[2], y1=bbox[3])
        return box, NormalizedBox.from_pixels(box, raw.width, raw.height)

    lines = []
    for line in raw_lines:
        box, geometry = place(line.bbox)
        lines.append(ReceiptLine(line_id=line.line_id, text=line.text, bbox=box, geometry=geometry,
                                 section=line.section))
    words = []
    for word in raw_words:
        box, geometry = place(word.bbox)
        words.append(ReceiptWord(word_id=word.word_id, line_id=word.line_id, text=word.text,
                                 bbox=box, geometry=geometry,
                                 labels=None if word.labels is None else tuple(word.labels)))
    fields = raw.fields.model_dump() if raw.fields is not None else {}
    if fields.get("company") is not None:
        fields["company"] = normalize_text(fields["company"])
    return Receipt(
        image_id=raw.receipt_id, receipt_number=receipt_number, width=raw.width, height=raw.height,
        source=raw.source, origin=raw.origin, image_path=raw.image_path,
        lines=tuple(lines), words=tuple(words), fields=ReceiptFields(**fields),
    )


class _Collector:
    def __init__(self, line_number: int, receipt_id: str | None) -> None:
        self.line_number = line_number
        self.receipt_id = receipt_id
        self.found: list[RecordError] = []

    def add(self, field: str, problem: str) -> None:
        self.found.append(RecordError(line_number=self.line_number, receipt_id=self.receipt_id,
                                      field=field, problem=problem))


def _check_id(errors: _Collector, field: str, check: Callable[..., object], *args: object) -> bool:
    try:
        check(*args)
    except InvalidItemIdError as exc:
        errors.add(field, f"{exc.problem}, got {exc.value!r}" if exc.echo_value else exc.problem)
        return False
    return True
