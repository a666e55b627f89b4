"""Checking the optional living-metadata inputs of a receipt record (issue 23): a receipt's `place`, a
line's `section` and a word's `labels`. The same label checks serve `labels apply` (labels/apply.py).

Each check names the field at fault and says what is wrong in JSON terms; the caller decides the
unit to skip (a word, a line, a part of `place`, a line of a labels file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr

from embedding_ingest.receipts.models import LABEL_STATUSES, Place, WordLabel
from embedding_ingest.receipts.text import normalize_text, text_problem

# Upper case only: the label becomes the metadata key label_<LABEL>, and lower case would let a label
# named "status" collide with label_status.
LABEL_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
MAX_SECTION_LENGTH = 64
PLACE_PARTS = ("merchant_name", "phone", "address", "website")


class RawLabel(BaseModel):
    """The shape of one label as given (types only; check_labels checks the meaning)."""

    model_config = ConfigDict(extra="ignore")

    label: StrictStr
    status: StrictStr
    proposed_by: StrictStr | None = None
    validated_at: StrictStr | None = None


def check_section(value: str) -> tuple[str | None, str | None]:
    """(normalised section, None) or (None, problem)."""
    text = normalize_text(value).strip()
    if not text:
        return None, f"must not be blank, got {json.dumps(value)}"
    if len(text) > MAX_SECTION_LENGTH:
        return None, f"must be at most {MAX_SECTION_LENGTH} characters, got {len(text)}"
    return text, None


def check_labels(raws: Sequence[RawLabel], where: str) -> tuple[tuple[WordLabel, ...], str, str | None]:
    """(labels, where, None) when every label is good, else ((), field at fault, problem). One label
    per name: a second entry for the same label is a problem, not a silent override."""
    checked: list[WordLabel] = []
    first_at: dict[str, int] = {}
    for index, raw in enumerate(raws):
        at = f"{where}[{index}]"
        if not LABEL_PATTERN.fullmatch(raw.label):
            return (), f"{at}.label", (f"must be 1-64 characters of A-Z, 0-9 and _ starting with a letter "
                                       f"(it becomes the metadata key label_<LABEL>), got "
                                       f"{json.dumps(raw.label)[:70]}")
        if raw.label in first_at:
            also = f"{where}[{first_at[raw.label]}]"
            return (), f"{at}.label", f"label {raw.label} is given twice (also at {also})"
        first_at[raw.label] = index
        if raw.status not in LABEL_STATUSES:
            return (), f"{at}.status", (f"must be one of {', '.join(LABEL_STATUSES)}, got "
                                        f"{json.dumps(raw.status)[:40]}")
        proposed_by = None
        if raw.proposed_by is not None:
            proposed_by = normalize_text(raw.proposed_by).strip()
            if not proposed_by:
                return (), f"{at}.proposed_by", "must not be blank (leave it out when unknown)"
        if raw.validated_at is not None and not _is_iso8601(raw.validated_at):
            shown = json.dumps(raw.validated_at)[:40]
            example = "2026-12-07T03:00:00Z"
            return (), f"{at}.validated_at", f"must be an ISO-8601 date-time such as {example}, got {shown}"
        checked.append(WordLabel(label=raw.label, status=raw.status,  # type: ignore[arg-type]
                                 proposed_by=proposed_by, validated_at=raw.validated_at))
    return tuple(checked), where, None


def check_place(value: Any, report: Callable[[str, str], None]) -> Place | None:
    """The receipt's place with its good parts; each bad part is reported (field, problem) and left
    out. None when there is no place, or no good part."""
    if value is None:
        return None
    if not isinstance(value, dict):
        report("place", f"must be a JSON object, got {json_type(value)}")
        return None
    parts: dict[str, str] = {}
    for name in PLACE_PARTS:
        part = value.get(name)
        if part is None:
            continue
        if not isinstance(part, str):
            report(f"place.{name}", f"must be a string, got {json_type(part)} {json.dumps(part)[:40]}; "
                                    "left out")
            continue
        text = normalize_text(part).strip()
        problem = text_problem(part, text) if text else None
        if problem is not None:
            report(f"place.{name}", f"{problem}; left out")
        elif text:
            parts[name] = text
    return Place(**parts) if parts else None


def _is_iso8601(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type (\"integer\", \"array\", ...), for messages."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
             dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
