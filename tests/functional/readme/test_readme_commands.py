"""The README's commands work verbatim: the fenced ```bash blocks of its "Using it" and "Monitoring"
sections run, in order, in one shell, on the workspace the demo leaves (the demo run as `make demo`
runs it, in a scratch copy of the repository's layout). A fence preceded by
`<!-- readme-test: needs-aws -->` or `<!-- readme-test: skip ... -->` is skipped. Documented
defaults match the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import _FOREIGN_SETTINGS
from readme_fences import bash_fences

from embedding_ingest.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[3]
README = REPO_ROOT / "README.md"
SECTIONS = ("Using it", "Monitoring")


def test_the_fence_extractor_keeps_bash_fences_of_the_two_sections_and_honours_skip_marks():
    text = "\n".join([
        "## Using it", "```bash", "echo one", "```", "```console", "$ not run", "```",
        "<!-- readme-test: needs-aws -->", "```bash", "aws only", "```",
        "### Monitoring (tasks)", "<!-- readme-test: skip (long-running) -->", "", "```bash", "forever",
        "```", "```bash", "echo two", "```", "## Configuration", "```bash", "not in a section", "```"])

    assert bash_fences(text, SECTIONS) == (["echo one", "echo two"], 2)


def _scratch_repository(root: Path) -> Path:
    """A directory shaped like a clone for the README's relative paths: .venv/bin/embedding-ingest is
    this interpreter's command, src/ the repository's sources (read-only use)."""
    work = root / "clone"
    (work / ".venv").mkdir(parents=True)
    (work / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    (work / "src").symlink_to(REPO_ROOT / "src")
    return work


@pytest.mark.slow
def test_readme_commands_run_verbatim_on_the_demo_workspace(tmp_path):
    fences, _ = bash_fences(README.read_text(encoding="utf-8"), SECTIONS)
    assert len(fences) >= 2, "the README's Using it / Monitoring sections lost their bash fences"
    work = _scratch_repository(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS}
    env.update(COLUMNS="100", LOCAL_PROVIDER_POLLS_PER_STAGE="0")  # batches finish at their first poll
    demo = subprocess.run([str(work / ".venv" / "bin" / "embedding-ingest"), "demo"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "export EMBEDDING_INGEST_HOME=.embedding-ingest/demo" in demo.stderr

    script = "set -euo pipefail\nset -x\n" + "\n".join(fences) + "\n"
    done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
                          timeout=1200)

    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr
    assert "published nothing: no active line batches to poll" in " ".join(done.stdout.split())
    assert not (work / ".embedding-ingest" / "ledger.sqlite3").exists()  # all of it in the demo's workspace


def _documented_defaults(text: str) -> dict[str, str]:
    """Variable -> default cell of the README's configuration table ("A, B" rows split "x / y")."""
    defaults: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        values = [v.strip() for v in cells[2].split(" / ")] if len(names) > 1 else [cells[2]]
        if len(values) == len(names):
            defaults.update(zip(names, values, strict=True))
    return defaults


def test_documented_defaults_match_the_code(tmp_path, monkeypatch):
    for variable in _FOREIGN_SETTINGS:
        monkeypatch.delenv(variable, raising=False)
    documented = _documented_defaults(README.read_text(encoding="utf-8"))
    settings = Settings()
    by_alias = {field.alias: name for name, field in Settings.model_fields.items() if field.alias}

    checked = 0
    for variable, cell in documented.items():
        if variable in by_alias and re.fullmatch(r"[\d.]+", cell):
            assert float(cell) == float(getattr(settings, by_alias[variable])), variable
            checked += 1
    assert checked >= 8
    assert documented["CHROMA_ROOT"] == "`$EMBEDDING_INGEST_HOME/chroma-cache`"
    assert settings.cache_dir == settings.home / "chroma-cache"
    assert documented["EMBEDDING_INGEST_HOME"] == "`./.embedding-ingest`" and settings.home == Path(
        ".embedding-ingest")
