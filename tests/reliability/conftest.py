"""The reliability suite (issue 6): crashes at every write, races, bad input, properties.

At the end of a session it prints, per crash suite, how many injection points the dry run enumerated
and how many of those cases passed (suites that did not run this session are not reported)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE.parent / "support", HERE):  # neither tests/support nor this directory is a package
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from injection_report import pytest_terminal_summary  # noqa: E402,F401 - the session summary hook
