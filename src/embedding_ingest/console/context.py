"""Lazily built ports for CLI commands (one per process)."""

from __future__ import annotations

from functools import cache

from embedding_ingest import runtime
from embedding_ingest.config import Settings


@cache
def settings() -> Settings:
    return Settings()


@cache
def ledger():
    return runtime.build_ledger(settings())


@cache
def objects():
    return runtime.build_object_store(settings())


@cache
def provider():
    return runtime.build_provider(settings())


def step_context():
    from embedding_ingest.steps.context import StepContext

    return StepContext(objects=objects(), ledger=ledger(), provider=provider(), settings=settings())


def reset() -> None:
    """Forget built ports: each CLI invocation reads the environment afresh (matters when the CLI is
    invoked several times in one process, as tests and the demo do)."""
    for cached in (settings, ledger, objects, provider):
        cached.cache_clear()
