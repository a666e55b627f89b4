"""Timestamps as Step Functions reads them (Wait Timestamp, Choice Timestamp* rules, IsTimestamp).

AWS: a timestamp must conform to RFC 3339 profile ISO 8601, with an uppercase T between date and time
and an uppercase Z (or a numeric offset) for the time zone, e.g. 2016-03-14T01:59:00Z.
https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html#amazon-states-language-choice-state-rules
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(value: Any) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp string; None when `value` is not one."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    if "." in text:  # Python takes at most 6 fraction digits
        head, _, tail = text.partition(".")
        digits = re.match(r"\d+", tail).group()  # type: ignore[union-attr] - the regex guarantees digits
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail[len(digits):]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:  # e.g. month 13
        return None


def is_timestamp(value: Any) -> bool:
    return parse_timestamp(value) is not None
