"""The engine stands alone: asl_local, its unit and functional tests, its conformance corpus and the
README's Python example run in a Python where embedding_ingest cannot be imported
(`sys.modules["embedding_ingest"] = None` before anything else). A product import added to the engine,
or to a helper its tests use, fails here.

The engine's tests run here, in a subprocess of their own (in the main session other tests have imported
the product already), and only here: when this test is selected, tests/conftest.py deselects them from
the main session, where, with the product importable, they would prove nothing more."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from engine_suite import ENGINE_TESTS

REPO_ROOT = Path(__file__).resolve().parents[2]
# Every line of Python below starts with this: embedding_ingest is unimportable from then on, and the
# first statement proves it (the check is void if the block does not hold).
WITHOUT_PRODUCT = """\
import sys
sys.modules["embedding_ingest"] = None
try:
    import embedding_ingest.stores  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("embedding_ingest could still be imported")
"""


def python_without_product(code: str, *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter where embedding_ingest cannot be imported (tests/support on the
    path, as pytest's pythonpath setting puts it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "tests" / "support"),
                                                                      os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", WITHOUT_PRODUCT + code], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_every_engine_module_imports_without_the_product():
    done = python_without_product("""
import importlib, pkgutil
import asl_local
names = [m.name for m in pkgutil.walk_packages(asl_local.__path__, "asl_local.")]
for name in names:
    importlib.import_module(name)
assert sys.modules["embedding_ingest"] is None
print(len(names))
""", timeout=120)

    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 25  # every module of the package, not an empty walk


def test_the_engines_tests_pass_without_the_product(tmp_path, request):
    report = tmp_path / "report.xml"
    marks = request.config.getoption("markexpr") or ""  # `make test-fast` (-m "not slow") passes it on
    args = [*ENGINE_TESTS, "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "inner"),
            "--junitxml", str(report), *(["-m", marks] if marks else [])]
    done = python_without_product(f"""
import pytest
code = pytest.main({args!r})
assert sys.modules["embedding_ingest"] is None, "something put embedding_ingest back"
raise SystemExit(code)
""", timeout=1200)

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    suite = ElementTree.parse(report).getroot().find("testsuite")
    counts = {key: int(suite.get(key)) for key in ("tests", "failures", "errors", "skipped")}
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
    assert counts["tests"] >= 300, counts  # the engine's whole suite ran, not a stray subset


def readme_python_example() -> str:
    """The ```python fence of the README's "Running any state machine locally" section."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Running any state machine locally", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"^```python\n(.*?)^```", section, flags=re.S | re.M)
    assert found, "the README's engine section has no ```python example"
    return found.group(1)


@pytest.mark.parametrize("example", [readme_python_example()], ids=["readme"])
def test_the_readme_python_example_runs_without_the_product_and_prints_what_it_says(example):
    promised = re.search(r"print\(.*\)\s*#\s*(.+)$", example, flags=re.M)
    assert promised, "the example's print says what it prints in a comment"

    done = python_without_product(example, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == promised.group(1).strip()
    assert len(example.strip().splitlines()) <= 6  # short enough to read at a glance
