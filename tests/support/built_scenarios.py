"""A scenario built once per test run, whichever pytest-xdist workers need it: the first worker to ask
builds it in a directory every worker of the run shares (the others wait on a file lock), and each
worker then works on its own copy of what was built. A module-scoped fixture alone is built once per
worker that runs one of the module's tests (up to three times under `make test`); copying a finished
workspace costs far less than building it again."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def _run_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory this run's workers share (each worker's base temp sits in it under xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str,
               build: Callable[[Path], Any]) -> tuple[Path, Any]:
    """(the directory `build` filled, what it returned) for `build(directory)`, run once per test run.
    The returned value goes through JSON (so: dicts, lists, strings, numbers). Treat the directory as
    read-only: copy what a test changes (`copy_of`)."""
    root = _run_directory(tmp_path_factory) / f"scenario-{name}"
    result = root.with_name(root.name + ".json")
    with root.with_name(root.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not result.exists():
            shutil.rmtree(root, ignore_errors=True)  # a build that failed half-way
            root.mkdir()
            result.write_text(json.dumps(build(root)), encoding="utf-8")
    return root, json.loads(result.read_text(encoding="utf-8"))


def copy_of(source: Path, target: Path) -> Path:
    """`source` (a finished scenario's directory, or a part of it) copied to `target`."""
    shutil.copytree(source, target, symlinks=True)
    return target


def cli_on_a_copy(tmp_path_factory: pytest.TempPathFactory, name: str,
                  build: Callable[[Path], Any]) -> tuple[Any, Any]:
    """(a fast_cli on a copy of the workspace `build(root)` made at root/home (built_once), what
    `build` returned). For module-scoped fixtures: the module's tests share the copy."""
    from cli_runner import fast_cli

    root, built = built_once(tmp_path_factory, name, build)
    cli = fast_cli(tmp_path_factory.mktemp(name))
    copy_of(root / "home", cli.home)
    return cli, built
