from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from steps_world import make_context

from embedding_ingest.steps.context import StepContext


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[StepContext]:
    context = make_context(tmp_path)
    yield context
    context.ledger.close()
