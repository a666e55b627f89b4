from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from corpus import MotoCorpusServer

if TYPE_CHECKING:
    from conformance_moto import MotoStepFunctions


@pytest.fixture(scope="session")
def moto_corpus_server() -> Iterator[MotoCorpusServer]:
    """One moto server process (Step Functions interpreter on, corpus Lambdas) for the whole session:
    it takes seconds to start, the corpus's executions a fraction of one each."""
    server = MotoCorpusServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def moto_sfn() -> Iterator[MotoStepFunctions]:
    """Moto's Step Functions in execution mode with our Lambda functions, for one test module."""
    # Imported here: it needs the product, and the corpus (test_corpus.py) runs without it too.
    from conformance_moto import MotoStepFunctions

    with MotoStepFunctions() as service:
        yield service
