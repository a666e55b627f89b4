"""Errors of the receipts package. Both are terminal: bad input does not get better on retry."""

from __future__ import annotations

from embedding_ingest.exceptions import InvalidInputError


class InvalidItemIdError(InvalidInputError):
    """An item id, or one of the components it is built from, is malformed. Names the component."""

    def __init__(self, component: str, value: object, problem: str, *, echo_value: bool = True) -> None:
        super().__init__(f"invalid {component} {value!r}: {problem}")
        self.component = component
        self.value = value
        self.problem = problem
        self.echo_value = echo_value  # False: `problem` already says what the value is


class ReceiptFileError(InvalidInputError):
    """The receipts file as a whole cannot be read (missing, a directory, unreadable)."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"cannot read receipts file {str(path)!r}: {problem}")
        self.path = path
        self.problem = problem


class NotJsonlError(InvalidInputError):
    """A file none of whose lines is a JSON object (a README, a CSV, a pretty-printed JSON document):
    nothing in it could be a receipt, so nothing is imported and no workspace is started for it."""

    def __init__(self, path: object, lines: int, first_line: int, first_problem: str) -> None:
        super().__init__(f"{path} is not a JSONL file (none of its {lines:,} lines is a JSON object; "
                         f"line {first_line}: {first_problem})")
        self.try_ = ("embedding-ingest receipts import FILE.jsonl   (one receipt object per line; "
                     "format: tests/data/README.md)")


__all__ = ["InvalidInputError", "InvalidItemIdError", "NotJsonlError", "ReceiptFileError"]
