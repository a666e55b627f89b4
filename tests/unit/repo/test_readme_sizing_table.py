"""The README's sizing table is generated from the committed bench figures (issue 21): what it says
each function needs is what bench/sizing_results.json and bench/merge_size_results.json hold, so a
figure edited by hand in the README, or new figures committed without regenerating it, fail here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
GENERATOR = REPO_ROOT / "bench" / "sizing_table.py"


def _check(readme: Path = REPO_ROOT / "README.md") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GENERATOR), "--check", "--readme", str(readme)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)


def test_the_readme_sizing_table_is_what_the_committed_figures_give():
    result = _check()

    assert result.returncode == 0, result.stderr


def test_the_table_states_each_function_peak_beside_its_configured_size():
    figures = json.loads((REPO_ROOT / "bench" / "sizing_results.json").read_text())
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    merger = figures["by_function"]["embedding-vector-compact:final_merge"]

    row = next(line for line in readme.splitlines() if line.startswith("| vector-compact: final_merge |"))
    assert f"{merger['function_peak_rss_mb']:,.0f} / {merger['function_memory_mb']:,} MB" in row


def test_a_figure_edited_by_hand_in_the_readme_is_caught(tmp_path):
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("| vector-compact: final_merge |"))
    lines[at] = "| vector-compact: final_merge | 99 / 3,008 MB (3%) | 1 / 10,240 MB (0%) |\n"
    edited = tmp_path / "README.md"
    edited.write_text("".join(lines), encoding="utf-8")

    result = _check(edited)

    assert result.returncode == 1
    assert "sizing table is not what bench/*_results.json give" in result.stderr
