"""End-to-end runs of the real workflows (tests/support/pipeline.py builds the workspaces)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE.parent / "support", HERE):  # neither tests/support nor this directory is a package
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
