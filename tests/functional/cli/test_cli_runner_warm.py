"""The tests' warm start (tests/support/cli_runner.py) must print what a fresh `embedding-ingest`
prints: the CLI's modules are imported once in a fork server, so a setting read as they are imported
(a Rich Console's width, colour) must not come from the server's environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import Cli

RENDER = ("definitions", "render", "line", "--output", "table")


def test_a_warm_command_prints_at_its_own_width_as_a_fresh_one_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The test process's own width, which a server started now would otherwise keep for good.
    monkeypatch.setenv("COLUMNS", "150")
    warm, fresh = Cli(tmp_path / "home", {}), Cli(tmp_path / "home", {}, fresh_process=True)
    narrow = warm.run(*RENDER, COLUMNS="60").stdout
    wide = warm.run(*RENDER, COLUMNS="150").stdout
    assert narrow != wide
    assert narrow == fresh.run(*RENDER, COLUMNS="60").stdout
    assert wide == fresh.run(*RENDER, COLUMNS="150").stdout
    assert warm.run(*RENDER, COLUMNS="60", NO_COLOR="1").stdout == fresh.run(*RENDER, COLUMNS="60",
                                                                              NO_COLOR="1").stdout
