from __future__ import annotations

from collections.abc import Iterator

import pytest
from conformance_moto import MotoStepFunctions  # noqa: E402 - needs the path above


@pytest.fixture(scope="module")
def moto_sfn() -> Iterator[MotoStepFunctions]:
    """Moto's Step Functions in execution mode with our Lambda functions, for one test module."""
    with MotoStepFunctions() as service:
        yield service
