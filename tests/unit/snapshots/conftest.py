"""Fixtures for snapshot tests: a real LocalObjectStore under the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedding_ingest.stores.local_objects import LocalObjectStore


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")
