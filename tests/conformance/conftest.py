from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))  # tests/support has no package

from conformance_moto import MotoStepFunctions  # noqa: E402 - needs the path above


@pytest.fixture(scope="module")
def moto_sfn() -> Iterator[MotoStepFunctions]:
    """Moto's Step Functions in execution mode with our Lambda functions, for one test module."""
    with MotoStepFunctions() as service:
        yield service
