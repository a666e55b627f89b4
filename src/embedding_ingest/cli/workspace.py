"""Lazily built ports for CLI commands (one per process)."""

from __future__ import annotations

from functools import cache

from embedding_ingest import backends
from embedding_ingest.config import Settings, load_settings
from embedding_ingest.exceptions import EmbeddingIngestError


class WorkspaceMissingError(EmbeddingIngestError):
    """A read-only command was pointed at a local workspace that does not exist (it is not created).
    Exits 2 (bad input: the wrong --home, or nothing imported yet)."""

    try_ = "embedding-ingest receipts import FILE"


@cache
def settings() -> Settings:
    """Raises ConfigurationError (one line: variable, value, rule) for a bad setting."""
    return load_settings()


def require_workspace() -> None:
    """For read-only commands: refuse, rather than create, a local workspace that does not exist yet."""
    current = settings()
    if not current.uses_aws_ledger and not current.ledger_path.exists():
        raise WorkspaceMissingError(f"no workspace at {current.home} (nothing imported there yet; "
                                    "--home or EMBEDDING_INGEST_HOME names another)")


@cache
def ledger():
    return backends.build_ledger(settings())


@cache
def objects():
    return backends.build_object_store(settings())


@cache
def provider():
    return backends.build_provider(settings())


def step_context():
    from embedding_ingest.steps.context import StepContext

    return StepContext(objects=objects(), ledger=ledger(), provider=provider(), settings=settings())


def reset() -> None:
    """Forget built ports: each CLI invocation reads the environment afresh (matters when the CLI is
    invoked several times in one process, as tests and the demo do)."""
    for cached in (settings, ledger, objects, provider):
        cached.cache_clear()
