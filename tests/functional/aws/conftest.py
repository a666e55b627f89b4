"""S3 and DynamoDB on moto's real-HTTP server (fixtures live in tests/support/moto_server.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))  # tests/support has no package

from moto_server import (  # noqa: E402, F401
    dynamo_ledger,
    dynamodb_client,
    dynamodb_table,
    moto_endpoint,
    s3_bucket,
    s3_client,
    s3_object_store,
)
