"""Lazily built ports for CLI commands (one per process).

A local workspace is started only by the commands that declare they start one (`creates_workspace`:
receipts import, demo, definitions run, schedule); any other command pointed at a workspace that does
not exist is refused (WorkspaceMissingError, exit 2) before anything is written, so a mistyped --home
creates nothing."""

from __future__ import annotations

from functools import cache

from embedding_ingest import backends
from embedding_ingest.config import Settings, load_settings
from embedding_ingest.exceptions import EmbeddingIngestError


class WorkspaceMissingError(EmbeddingIngestError):
    """A command that does not start a workspace was pointed at a local one that does not exist (it is
    not created). Exits 2 (bad input: the wrong --home, or nothing imported yet)."""

    try_ = "embedding-ingest receipts import FILE"


# Whether the running command may start a local workspace (creates_workspace); reset() clears it.
_may_create = {"workspace": False}


@cache
def settings() -> Settings:
    """Raises ConfigurationError (one line: variable, value, rule) for a bad setting."""
    return load_settings()


def require_workspace() -> None:
    """Refuse, rather than create, a local workspace that does not exist yet (WorkspaceMissingError).
    The ports below call it for every command that did not call creates_workspace()."""
    current = settings()
    if not current.uses_aws_ledger and not current.ledger_path.exists():
        raise WorkspaceMissingError(f"no workspace at {current.home} (nothing imported there yet; "
                                    "--home or EMBEDDING_INGEST_HOME names another)")


def creates_workspace() -> None:
    """Declare that the running command may start a local workspace where none exists (the ports
    below then create it); until reset()."""
    _may_create["workspace"] = True


def _existing_or_created() -> Settings:
    if not _may_create["workspace"]:
        require_workspace()
    return settings()


@cache
def ledger():
    """Raises WorkspaceMissingError (see require_workspace) unless the command creates_workspace()."""
    return backends.build_ledger(_existing_or_created())


@cache
def objects():
    """Raises WorkspaceMissingError (see require_workspace) unless the command creates_workspace()."""
    return backends.build_object_store(_existing_or_created())


@cache
def provider():
    """Raises WorkspaceMissingError (see require_workspace) unless the command creates_workspace()."""
    return backends.build_provider(_existing_or_created())


def shown_version(database: str, version: str | None) -> str | None:
    """`version` as people are shown it: cut at the length at which the kept versions of `database`
    are unique, at least 8 characters (snapshots.version_ids.short_version), as `snapshots list` shows
    it and every --version accepts it. Without a readable ledger (no local workspace), 8 characters."""
    from embedding_ingest.snapshots.version_ids import short_version

    if not version:
        return version
    try:
        kept = [v.version for v in ledger().list_versions(database)]
    except Exception:  # noqa: BLE001 - only a display length: never fail a command over it
        kept = []
    return short_version(version, kept)


def step_context():
    from embedding_ingest.steps.context import StepContext

    return StepContext(objects=objects(), ledger=ledger(), provider=provider(), settings=settings())


def reset() -> None:
    """Forget built ports: each CLI invocation reads the environment afresh (matters when the CLI is
    invoked several times in one process, as tests and the demo do)."""
    for cached in (settings, ledger, objects, provider):
        cached.cache_clear()
    _may_create["workspace"] = False
