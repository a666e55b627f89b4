"""Lambda entrypoints against real-HTTP AWS (moto's server) and the fake OpenAI server."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))  # tests/support has no package

from lambda_fixtures import fake_openai, fresh_containers, lambda_env, secret_arn  # noqa: E402, F401
from moto_server import (  # noqa: E402, F401
    dynamo_ledger,
    dynamodb_client,
    dynamodb_table,
    moto_endpoint,
    s3_bucket,
    s3_client,
)
