"""One-line wording of a record's problems: where in the record (`path_of`), what pydantic found said in
JSON terms (`describe`), and values shown short (`short`, `pixels`). Used by receipts.validation."""

from __future__ import annotations

import json
from typing import Any

from embedding_ingest.receipts.labels_input import json_type

RECORD = "<record>"  # the field name used when the record as a whole is at fault


def path_of(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as a field path: ("lines", 3, "text") -> "lines[3].text"; () -> RECORD."""
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


def describe(detail: Any) -> str:
    """One pydantic error detail (a dict with type, msg, input) as "must be ..., got TYPE VALUE"."""
    if detail["type"] == "missing":
        return "is required but missing"
    message = _EXPECTED.get(detail["type"])
    if message is None:
        message = detail["msg"][:1].lower() + detail["msg"][1:]
    return f"{message}, got {json_type(detail['input'])} {short(detail['input'])}"


def short(value: object, limit: int = 40) -> str:
    """`value` as JSON, cut to `limit` characters with "..." when longer."""
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def pixels(value: float) -> str:
    """Pixels as written (50, 130.6), without a float's '.0' or a 300-digit expansion."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)
