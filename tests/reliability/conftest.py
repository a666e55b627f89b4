"""The reliability suite (issue 6): crashes at every write, races, bad input, properties.

Prints how many crash injection points the dry run enumerated and how many of their cases passed."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE.parent / "support", HERE):  # neither tests/support nor this directory is a package
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

CRASH_CASES_KEY = "reliability/crash_injection_points"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    enumerated = config.cache.get(CRASH_CASES_KEY, None)
    if enumerated is None:
        return
    passed = [r for r in terminalreporter.stats.get("passed", [])
              if "test_crash_matrix.py::test_crash_at" in r.nodeid and r.when == "call"]
    terminalreporter.write_sep("-", "reliability: crash injection")
    terminalreporter.write_line(f"{enumerated['points']} injection points enumerated by the dry run "
                                f"({enumerated['steps']} steps, {enumerated['writes']} writes before/after "
                                f"+ step entries); {len(passed)} crash cases passed in this session")
