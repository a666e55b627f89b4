"""Errors of submission."""

from __future__ import annotations

from embedding_ingest.exceptions import ConfigurationError


class ModelChangeError(ConfigurationError):
    """The configured model or width is not the one the kind is published (or being migrated) with:
    submitting would pay for vectors the publish then refuses (issue 19). One line naming both; `try_`
    is the command to run instead (the CLI prints it as `try:`)."""

    def __init__(self, message: str, *, try_: str | None = None) -> None:
        super().__init__(message)
        self.try_ = try_
