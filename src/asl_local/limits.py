"""Step Functions service limits the local engine enforces exactly like AWS."""

from __future__ import annotations

import json
from typing import Any

from asl_local.errors import STATES_DATA_LIMIT, StatesFailure

MAX_PAYLOAD_BYTES = 262_144  # 256 KB of UTF-8, for every state input/output and task result
MAX_HISTORY_EVENTS = 25_000


def to_json(value: Any) -> str:
    """The compact JSON text Step Functions would hold for `value`."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def payload_bytes(value: Any) -> int:
    return len(to_json(value).encode("utf-8"))


def check_payload(value: Any, *, state: str, what: str) -> None:
    """Raise States.DataLimitExceeded when `value` is over the 256 KB payload quota."""
    size = payload_bytes(value)
    if size > MAX_PAYLOAD_BYTES:
        raise StatesFailure(
            STATES_DATA_LIMIT,
            f"The state/task '{state}' {what} has a size of {size} bytes, exceeding the maximum "
            f"of {MAX_PAYLOAD_BYTES} bytes service limit.")
