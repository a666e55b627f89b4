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


__all__ = ["InvalidInputError", "InvalidItemIdError", "ReceiptFileError"]
