"""Errors raised by the workflow steps. The class name is the error name Step Functions and the local
engine see, so each says what went wrong; the base class says whether retrying can help."""

from __future__ import annotations

from embedding_ingest.exceptions import InvalidInputError, TerminalError


class StepInputError(InvalidInputError):
    """An event does not match its step's contract; the message names the step and every bad field."""


class UnknownOperationError(InvalidInputError):
    """An event's `operation` names no sub-handler of the Lambda it was sent to."""


class BatchTypeMismatchError(InvalidInputError):
    """A batch of one kind (line/word) reached a step of the other kind."""


class OffloadedIndexError(InvalidInputError):
    """An event points at an entry of an offloaded list that is not there."""

    def __init__(self, key: str, index: int, length: int) -> None:
        super().__init__(f"{key!r} holds {length} entries; index {index} does not exist")
        self.key = key
        self.index = index


class EmbeddingCountMismatchError(TerminalError):
    """A merge produced a different number of embeddings than went in (lesson 4: never lose any)."""

    def __init__(self, what: str, expected: int, actual: int) -> None:
        super().__init__(f"{what}: expected {expected} embeddings, found {actual}")
        self.expected = expected
        self.actual = actual
