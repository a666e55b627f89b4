"""Real receipts from /work/shared/data (400 SROIE receipts), read once per test session."""

from pathlib import Path

import pytest

from embedding_ingest.receipts.importer import ImportParse, read_receipts

SROIE = Path("/work/shared/data/receipts-sroie.jsonl")


@pytest.fixture(scope="session")
def sroie_path() -> Path:
    assert SROIE.is_file(), f"test data missing: {SROIE}"
    return SROIE


@pytest.fixture(scope="session")
def sroie(sroie_path) -> ImportParse:
    return read_receipts(sroie_path)


@pytest.fixture(scope="session")
def sroie_by_id(sroie):
    return {receipt.image_id: receipt for receipt in sroie.receipts}


@pytest.fixture
def sroie_slice(sroie_path, tmp_path):
    """The first `count` real records as their own file (the raw lines, byte for byte)."""

    def write(count: int, extra: list[bytes] = ()) -> Path:
        with sroie_path.open("rb") as source:
            lines = [next(source) for _ in range(count)]
        path = tmp_path / f"sroie-first-{count}.jsonl"
        path.write_bytes(b"".join(lines) + b"".join(line.rstrip(b"\n") + b"\n" for line in extra))
        return path

    return write
