"""Errors of submission."""

from __future__ import annotations

from embedding_ingest.exceptions import ConfigurationError


class ModelChangeError(ConfigurationError):
    """The configured model or width is not the one the kind is published (or being migrated) with:
    submitting would pay for vectors the publish then refuses (issue 19). One line naming both and
    what to run."""
