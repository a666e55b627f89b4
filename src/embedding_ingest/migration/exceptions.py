"""Errors of model migrations. A refusal says in one line what to do instead; it changes nothing."""

from __future__ import annotations

from embedding_ingest.exceptions import ConfigurationError


class MigrationRefusedError(ConfigurationError):
    """The migration cannot start, go on or roll back now (batches of the old model still running, a
    migration to another target under way, nothing to roll back...). The message says what and why;
    `try_`, when there is one, is the command to run instead (the CLI prints it as `try:`)."""

    def __init__(self, message: str, *, try_: str | None = None) -> None:
        super().__init__(message)
        self.try_ = try_
