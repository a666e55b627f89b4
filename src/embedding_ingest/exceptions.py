"""Errors shared by every package.

Each error is either *transient* (retrying the same work may succeed: throttling, a lost lock race,
a network blip) or *terminal* (the input is wrong; retrying cannot help). Step Functions Retry and our
local engine decide retry-vs-fail from the error's class name, so the names are part of the contract.
"""

from __future__ import annotations


class EmbeddingIngestError(Exception):
    """Base of every error this project raises on purpose."""

    transient: bool = False


class TransientError(EmbeddingIngestError):
    """Retrying the same work later may succeed."""

    transient = True


class TerminalError(EmbeddingIngestError):
    """The work cannot succeed as given; retrying is pointless."""

    transient = False


class InvalidInputError(TerminalError):
    """An event, record or file does not have the shape we require; the message names the item."""


class ConfigurationError(TerminalError):
    """Settings are missing or contradictory."""
