"""The CLI as a process of its own on a fresh workspace per test (tests/support/cli_runner.py), and
scenarios several modules share, built once per run (tests/support/built_scenarios.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from built_scenarios import built_once, copy_of
from cli_runner import Cli, fast_cli
from pipeline import receipts_file


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return fast_cli(tmp_path)


def _lose_the_published_archive(root: Path) -> dict:
    """Lines of 2 receipts published by execution `first`; then its one segment archive lost (and not
    cached), and a third receipt's lines imported and submitted: the next final merge, which must
    build on the lost archive, fails."""
    cli = fast_cli(root)
    cli.json("receipts", "import", str(receipts_file(root, 2)))
    cli.json("submit", "line")
    first = cli.json("start-execution", "line", "--name", "first")
    archives = sorted((cli.home / "objects" / "lines" / "snapshot" / "segments").glob("*/*.tar"))
    for archive in archives:
        archive.unlink()
    shutil.rmtree(cli.home / "chroma-cache")
    cli.json("receipts", "import", str(receipts_file(root, 1, start=2)))
    second = cli.json("submit", "line")
    return {"first": first, "archives": [archive.name for archive in archives],
            "second_batches": [batch["batch_id"] for batch in second["batches"]]}


@pytest.fixture
def lost_archive(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> tuple[Cli, dict]:
    """(cli on a copy of the workspace whose published archive is lost, what _lose_the_published_archive
    returned): the next `start-execution line` fails in FinalMerge."""
    root, built = built_once(tmp_path_factory, "lost-archive", _lose_the_published_archive)
    cli = fast_cli(tmp_path)
    copy_of(root / "home", cli.home)
    return cli, built
