"""Checking one untrusted JSONL record and turning it into a Receipt, or into errors naming the fault.

Every problem found in a record is reported (not only the first), each as a RecordError naming the
file line, the receipt id when readable, and the field path ("lines[3].bbox"). A record with any
error is rejected whole: a receipt missing some of its lines would give wrong row context.

Boxes must lie within the image, with no tolerance: all 69,377 boxes of the 400 real SROIE receipts
do (checked when this was written), so a box outside the image is a broken record, not OCR jitter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, computed_field

from embedding_ingest.receipts.exceptions import InvalidItemIdError
from embedding_ingest.receipts.ids import check_image_id, check_number
from embedding_ingest.receipts.models import (
    NormalizedBox,
    PixelBox,
    Receipt,
    ReceiptFields,
    ReceiptLine,
    ReceiptWord,
)

RECORD = "<record>"  # the field name used when the record as a whole is at fault


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
        who = f"receipt {self.receipt_id!r}" if self.receipt_id is not None else "receipt id unreadable"
        return f"line {self.line_number} ({who}): {self.field}: {self.problem}"

    def __str__(self) -> str:
        return self.message


# -- the shape a record must have (types only; meaning is checked below) ------------------------
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown keys are tolerated, never used


class _RawLine(_Shape):
    line_id: StrictInt
    text: StrictStr
    bbox: list[Number]


class _RawWord(_RawLine):
    word_id: StrictInt


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
    lines: list[_RawLine]
    words: list[_RawWord]
    fields: _RawFields | None = None


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
    """A Receipt when every check passes, else every error found."""
    receipt_id = readable_receipt_id(record)
    errors = _Collector(line_number, receipt_id)
    try:
        raw = _RawRecord.model_validate(record)
    except ValidationError as exc:
        for detail in exc.errors(include_url=False):
            errors.add(_path(detail["loc"]), _describe(detail))
        return errors.found

    _check_id(errors, "receipt_id", check_image_id, raw.receipt_id)
    receipt_number = 1 if raw.receipt_number is None else raw.receipt_number
    _check_id(errors, "receipt_number", check_number, "receipt_number", receipt_number)
    for name, size in (("width", raw.width), ("height", raw.height)):
        if size <= 0:
            errors.add(name, f"image {name} must be greater than 0, got {_num(size)}")
    image_ok = raw.width > 0 and raw.height > 0

    first_line_at: dict[int, int] = {}
    for index, line in enumerate(raw.lines):
        where = f"lines[{index}]"
        if _check_id(errors, f"{where}.line_id", check_number, "line_id", line.line_id):
            if line.line_id in first_line_at:
                errors.add(f"{where}.line_id", f"duplicate line_id {line.line_id} "
                                               f"(also at lines[{first_line_at[line.line_id]}])")
            else:
                first_line_at[line.line_id] = index
        _check_text(errors, where, line.text)
        _check_box(errors, where, line.bbox, raw.width, raw.height, image_ok)

    first_word_at: dict[int, int] = {}
    for index, word in enumerate(raw.words):
        where = f"words[{index}]"
        if _check_id(errors, f"{where}.word_id", check_number, "word_id", word.word_id):
            if word.word_id in first_word_at:
                errors.add(f"{where}.word_id", f"duplicate word_id {word.word_id} "
                                               f"(also at words[{first_word_at[word.word_id]}])")
            else:
                first_word_at[word.word_id] = index
        if (_check_id(errors, f"{where}.line_id", check_number, "line_id", word.line_id)
                and word.line_id not in first_line_at):
            errors.add(f"{where}.line_id", f"word_id {word.word_id} refers to line_id {word.line_id}, "
                                           "which no line of this receipt has")
        _check_text(errors, where, word.text)
        _check_box(errors, where, word.bbox, raw.width, raw.height, image_ok)

    if errors.found:
        return errors.found
    try:
        return _build_receipt(raw, receipt_number)
    except ValidationError as exc:  # only reachable through float extremes the checks above miss
        errors.add(RECORD, f"cannot be represented: {exc.errors(include_url=False)[0]['msg']}")
        return errors.found


def _build_receipt(raw: _RawRecord, receipt_number: int) -> Receipt:
    def place(bbox: list[float]) -> tuple[PixelBox, NormalizedBox]:
        box = PixelBox(x0=bbox[0], y0=bbox[1], x1=bbox[2], y1=bbox[3])
        return box, NormalizedBox.from_pixels(box, raw.width, raw.height)

    lines = []
    for line in raw.lines:
        box, geometry = place(line.bbox)
        lines.append(ReceiptLine(line_id=line.line_id, text=line.text, bbox=box, geometry=geometry))
    words = []
    for word in raw.words:
        box, geometry = place(word.bbox)
        words.append(ReceiptWord(word_id=word.word_id, line_id=word.line_id, text=word.text,
                                 bbox=box, geometry=geometry))
    fields = raw.fields.model_dump() if raw.fields is not None else {}
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
        errors.add(field, f"{exc.problem}, got {exc.value!r}")
        return False
    return True


def _check_text(errors: _Collector, where: str, text: str) -> None:
    if not text.strip():
        errors.add(f"{where}.text", f"must not be empty or blank, got {text!r}")


def _check_box(errors: _Collector, where: str, bbox: list[float], width: float, height: float,
               image_ok: bool) -> None:
    field = f"{where}.bbox"
    if len(bbox) != 4:
        errors.add(field, f"must be 4 numbers [x0, y0, x1, y1], got {len(bbox)}")
        return
    x0, y0, x1, y1 = bbox
    shown = "[" + ", ".join(_num(v) for v in bbox) + "]"
    if x0 >= x1:
        errors.add(field, f"x0 ({_num(x0)}) must be less than x1 ({_num(x1)}) in {shown}")
    if y0 >= y1:
        errors.add(field, f"y0 ({_num(y0)}) must be less than y1 ({_num(y1)}) in {shown}")
    if not image_ok:
        return
    if x0 < x1 and y0 < y1 and ((x1 - x0) / width == 0 or (y1 - y0) / height == 0):
        errors.add(field, f"box {shown} is too small to measure on a {_num(width)}x{_num(height)} image")
    outside = [
        f"{name} {_num(value)} < 0" for name, value in (("x0", x0), ("y0", y0)) if value < 0
    ] + [
        f"{name} {_num(value)} > {limit_name} {_num(limit)}"
        for name, value, limit_name, limit in (("x1", x1, "width", width), ("y1", y1, "height", height))
        if value > limit
    ]
    if outside:
        errors.add(field, f"box {shown} lies outside the {_num(width)}x{_num(height)} image "
                          f"({'; '.join(outside)})")


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or RECORD


# pydantic's words for type errors name our private classes; say it in JSON terms instead
_EXPECTED = {
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
}


def _describe(detail: Any) -> str:
    if detail["type"] == "missing":
        return "is required but missing"
    message = _EXPECTED.get(detail["type"])
    if message is None:
        message = detail["msg"][:1].lower() + detail["msg"][1:]
    return f"{message}, got {_json_type(detail['input'])} {_short(detail['input'])}"


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
             dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _short(value: object, limit: int = 40) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _num(value: float) -> str:
    """Pixels as written (50, 130.6), without a float's '.0' or a 300-digit expansion."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)
