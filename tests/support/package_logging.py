"""Lambda entrypoints make the package log JSON and stop propagating; tests that run them give
every other test its logging back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from embedding_ingest.aws.functions.observability import PACKAGE_LOGGER


@contextmanager
def restored_package_logging() -> Iterator[None]:
    """Whatever happens inside, the package logger leaves with the handlers, propagation and level
    it came in with."""
    package = logging.getLogger(PACKAGE_LOGGER)
    saved_handlers, saved_propagate, saved_level = list(package.handlers), package.propagate, package.level
    try:
        yield
    finally:
        package.handlers[:] = saved_handlers
        package.propagate = saved_propagate
        package.setLevel(saved_level)
