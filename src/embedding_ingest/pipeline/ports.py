"""The ledger, object store and provider one run loop works with, each opened at most once.

A caller that already holds a port (the CLI's workspace, the web console, the schedule) hands it in and
keeps closing it; a missing one is built from the settings (embedding_ingest.backends) on first use and
closed by `close()`. Lazily, because an AWS run that succeeds needs none of them: `start-execution
--backend aws` must not create a local workspace just to leave it empty.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from embedding_ingest import backends
from embedding_ingest.config import Settings

if TYPE_CHECKING:
    from embedding_ingest.providers.base import BatchProvider
    from embedding_ingest.steps.context import StepContext
    from embedding_ingest.stores.ports import Ledger, ObjectStore


class RunPorts:
    """`ledger`, `objects` and `provider` for `settings`: given, or built on first use (thread-safe:
    the local engine's Map iterations may ask at once). Raises what backends.build_* raise
    (ConfigurationError for an unusable setting) when a port is first built."""

    def __init__(self, settings: Settings, *, ledger: Ledger | None = None,
                 objects: ObjectStore | None = None, provider: BatchProvider | None = None) -> None:
        self.settings = settings
        self._given: dict[str, Any] = {"ledger": ledger, "objects": objects, "provider": provider}
        self._built: dict[str, Any] = {}
        self._context: StepContext | None = None
        self._lock = threading.RLock()

    def _port(self, name: str, build: Callable[[Settings], Any]) -> Any:
        with self._lock:
            port = self._given[name] if self._given[name] is not None else self._built.get(name)
            if port is None:
                port = self._built[name] = build(self.settings)
            return port

    @property
    def ledger(self) -> Ledger:
        return self._port("ledger", backends.build_ledger)

    @property
    def objects(self) -> ObjectStore:
        return self._port("objects", backends.build_object_store)

    @property
    def provider(self) -> BatchProvider:
        return self._port("provider", backends.build_provider)

    def step_context(self) -> StepContext:
        """The StepContext of the steps run in this process (one, reused)."""
        from embedding_ingest.steps.context import StepContext

        with self._lock:
            if self._context is None:
                self._context = StepContext(objects=self.objects, ledger=self.ledger,
                                            provider=self.provider, settings=self.settings)
            return self._context

    def close(self) -> None:
        """Close the ledger if it was built here (a given one stays open for its owner); ports built
        here are forgotten, so a later use builds them afresh."""
        with self._lock:
            built, self._built, self._context = self._built, {}, None
        if "ledger" in built:
            built["ledger"].close()
