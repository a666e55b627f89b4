"""The README's "published snapshot in your own programs" examples run verbatim on a real workspace."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SECTION = "## The published snapshot in your own programs"


def _fences(language: str) -> list[str]:
    text = REPO.joinpath("README.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def _env(ws) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROMA", "EMBEDDING", "DYNAMODB"))}
    env["EMBEDDING_INGEST_HOME"] = str(ws.settings.home)
    return env


def test_the_python_example_runs_and_prints_hits(layered_workspace, tmp_path):
    # The other python fence queries `snapshots serve`: test_stock_chroma runs it on a served snapshot.
    (code,) = [fence for fence in _fences("python") if "HttpClient" not in fence]
    done = subprocess.run([sys.executable, "-c", code], env=_env(layered_workspace), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    version = layered_workspace.ledger.get_published("lines")
    assert lines[0].split() == [version.version, version.model, str(version.count)]
    assert len(lines) >= 3 and all("TOTAL" in line for line in lines[1:-1])
    assert lines[-1].endswith("lines on that receipt")


def test_the_shell_example_runs_verbatim(layered_workspace, tmp_path):
    (script,) = _fences("bash")
    tools = tmp_path / ".venv" / "bin"
    tools.mkdir(parents=True)
    (tools / "embedding-ingest").symlink_to(Path(sys.executable).parent / "embedding-ingest")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=_env(layered_workspace),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert (tmp_path / "lines-chroma" / "chroma.sqlite3").is_file()
    assert "Already pulled" in done.stdout and "ok" in done.stdout
