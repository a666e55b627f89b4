"""The CLI as a subprocess on a fresh workspace per test (tests/support/cli_runner.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import Cli, fast_cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return fast_cli(tmp_path)
