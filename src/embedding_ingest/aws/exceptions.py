"""Errors of the AWS deployment layer (Lambda entrypoints, secrets)."""

from __future__ import annotations

from embedding_ingest.exceptions import ConfigurationError, TransientError


class SecretNotFoundError(ConfigurationError):
    """The configured secret or parameter does not exist, is empty, or this role may not read it."""


class SecretUnavailableError(TransientError):
    """The secrets service could not be reached or throttled us; a retry may succeed."""


class UnknownLambdaFunctionError(ConfigurationError):
    """An entrypoint was asked to run a function the registry does not know."""
