"""Builders of small synthetic receipts; they go through the real validation, like file input does."""

import pytest
from receipt_builders import record

from embedding_ingest.receipts.models import Receipt
from embedding_ingest.receipts.validation import validate_record


@pytest.fixture
def make_receipt():
    def build(lines, words=(), **overrides) -> Receipt:
        outcome = validate_record(record(lines, words, **overrides), line_number=1)
        assert isinstance(outcome, Receipt), outcome
        return outcome

    return build
