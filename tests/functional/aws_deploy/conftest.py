"""Lambda entrypoints against real-HTTP AWS (moto's server) and the fake OpenAI server."""

from __future__ import annotations

from lambda_fixtures import fake_openai, fresh_containers, lambda_env, secret_arn  # noqa: E402, F401
