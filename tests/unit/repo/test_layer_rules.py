"""`make lint` checks the README's layer rules (import-linter's contracts in pyproject.toml) and bites:
on a copy of the source tree with `import embedding_ingest.cli` planted in a store module (or another
rule's forbidden import planted where it is forbidden), lint-imports fails naming the broken contract;
on the unmodified copy it passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# (module, import planted at its end, the contract that must break, the import it must report)
PLANTED = [
    ("embedding_ingest/stores/local_objects.py", "import embedding_ingest.cli", "storage-below-steps",
     "embedding_ingest.stores.local_objects -> embedding_ingest.cli"),
    ("asl_local/engine/runner.py", "import embedding_ingest.exceptions", "engine-alone",
     "asl_local.engine.runner -> embedding_ingest.exceptions"),
    ("embedding_ingest/steps/poll.py", "import embedding_ingest.pipeline.run", "steps-below-pipeline",
     "embedding_ingest.steps.poll -> embedding_ingest.pipeline.run"),
]


def _contract_name(contract_id: str) -> str:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return next(c["name"] for c in config["tool"]["importlinter"]["contracts"] if c["id"] == contract_id)


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on `tree` (a copy with src/ and pyproject.toml): its packages come first on the path,
    ahead of the editable install's src/ that the project's venv points at."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache",
                           "--no-logo"], cwd=tree, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    skipped = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO_ROOT / "src", copy / "src", ignore=skipped)
    shutil.copy(REPO_ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_layer_rules_hold_on_the_tree_as_it_is(tree: Path) -> None:
    result = _lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_a_forbidden_import_breaks_the_lint_naming_the_contract(tree: Path) -> None:
    # One run over a copy with every plant in it (one lint-imports run per plant cost ~1 s each): each
    # rule must report itself BROKEN naming its own planted import, so no plant can stand in for another.
    for module, planted, _, _ in PLANTED:
        path = tree / "src" / module
        path.write_text(path.read_text(encoding="utf-8") + f"\n{planted}  # noqa: E402\n", encoding="utf-8")
    result = _lint_imports(tree)
    assert result.returncode != 0, result.stdout
    report = " ".join(result.stdout.split())  # lint-imports wraps long contract names
    for _, _, contract_id, reported in PLANTED:
        assert f"{_contract_name(contract_id)} BROKEN" in report, result.stdout
        assert reported in report, result.stdout
