"""A fresh clone is all the project needs: nothing under src/, tests/, bench/ or the Makefile may refer
to a path outside the repository (the folder CI happens to place beside the clone included)."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
SCANNED = ("src", "tests", "bench")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".ini", ".json", ".yaml", ".yml", ".sh", ".txt", ".html",
                 ".js", ".css"}

# Spellings of "outside the repository" that no relative-path literal would show: absolute workspace
# paths, the sibling folder CI lays beside the clone, and climbing above the repository root in code.
# The folder's name is assembled, so this file itself never spells a path outside the repository.
SIBLING = "sha" + "red"
OUTSIDE_PATTERNS = [
    (re.compile(r"(?<![\w.])/work/"), "absolute workspace path /work/"),
    (re.compile(rf"\.\./{SIBLING}\b"), "the sibling folder beside the clone"),
    (re.compile(
        rf"REPO_ROOT\.parent\b|\.parents\[\d+\]\s*/\s*[\"']{SIBLING}[\"']"), "a folder beside the repo"),
    (re.compile(rf"\.parent\s*/\s*[\"']{SIBLING}[\"']"), "a folder beside the repo"),
]


def _scanned_files() -> list[Path]:
    files = [REPO_ROOT / "Makefile", REPO_ROOT / ".ci" / "run"]
    for top in SCANNED:
        for path in sorted((REPO_ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                if path.parent.name == "data" and path.suffix == ".jsonl":
                    continue
                files.append(path)
    return [path for path in files if path.exists() and path.resolve() != Path(__file__).resolve()]


def _relative_literals(path: Path, text: str) -> list[str]:
    """String literals in Python source that start with ../ (only those can climb out relatively)."""
    if path.suffix != ".py":
        return re.findall(r"(?:^|[\s\"'(=])(\.\./[^\s\"')]*)", text)
    found = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.STRING:
            body = token.string.lstrip("rbuRBUfF").strip("\"'")
            if body.startswith("../"):
                found.append(body)
    return found


def problems_in(path: Path, text: str) -> list[str]:
    """Every reference in `text` (the contents of `path`) to a location outside the repository."""
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in OUTSIDE_PATTERNS:
            if pattern.search(line):
                problems.append(f"{path.relative_to(REPO_ROOT)}:{number}: {what}: {line.strip()[:100]}")
    for literal in _relative_literals(path, text):
        target = (path.parent / literal).resolve()
        if not target.is_relative_to(REPO_ROOT):
            problems.append(f"{path.relative_to(REPO_ROOT)}: relative path {literal!r} leaves the repository")
    return problems


def test_no_file_refers_to_a_path_outside_the_repository():
    problems = [p for path in _scanned_files() for p in problems_in(path, path.read_text(errors="replace"))]
    assert problems == [], "\n".join(problems)


def test_the_check_catches_each_kind_of_outside_reference(tmp_path):
    planted = REPO_ROOT / "tests" / "unit" / "repo" / "planted.py"
    samples = {
        f'DATA = REPO_ROOT.parent / "{SIBLING}" / "data"': "a folder beside the repo",
        f'open("../{SIBLING}/data/receipts-sroie.jsonl")': "the sibling folder beside the clone",
        f'open("/work/{SIBLING}/x")': "absolute workspace path",
        'p = Path(__file__).parent / "../../../../outside.txt"': "leaves the repository",
    }
    for source, expected in samples.items():
        found = problems_in(planted, source + "\n")
        assert any(expected in problem for problem in found), (source, found)
    assert problems_in(planted, 'KEY = "../escape"  # an attack input, stays inside when resolved\n') == []


def test_the_receipts_the_tests_use_are_in_the_repository():
    data = REPO_ROOT / "tests" / "data"
    assert (data / "receipts-sroie.jsonl").is_file()
    assert "SROIE" in (data / "README.md").read_text()
