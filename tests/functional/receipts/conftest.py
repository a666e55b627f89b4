"""The real SROIE receipts (400, from tests/data in this repository), read once per session."""

from pathlib import Path

import pytest
from pipeline import SROIE_RECEIPTS, receipts_file

from embedding_ingest.receipts.importer import ImportParse, read_receipts


@pytest.fixture(scope="session")
def sroie_path() -> Path:
    assert SROIE_RECEIPTS.is_file(), f"test data missing: {SROIE_RECEIPTS}"
    return SROIE_RECEIPTS


@pytest.fixture(scope="session")
def sroie(sroie_path) -> ImportParse:
    return read_receipts(sroie_path)


@pytest.fixture(scope="session")
def sroie_by_id(sroie):
    return {receipt.image_id: receipt for receipt in sroie.receipts}


@pytest.fixture
def sroie_slice(sroie_path, tmp_path):
    """The first `count` real records as their own file, then each of `extra` as a line of its own."""

    def write(count: int, extra: list[bytes] = ()) -> Path:
        path = receipts_file(tmp_path, count)
        with path.open("ab") as out:
            out.write(b"".join(line.rstrip(b"\n") + b"\n" for line in extra))
        return path

    return write
