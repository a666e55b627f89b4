"""Answer one AWS call with a canned HTTP error, at the HTTP layer of a real boto3 client, to see how
the adapters translate what the service can say (throttling, 5xx) but moto never does."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


def single_attempt_client(service: str, endpoint_url: str, region: str) -> Any:
    """A client that does not retry, so an injected error reaches the adapter at once."""
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region,
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                      connect_timeout=2, read_timeout=5))


def answer_with(client: Any, operation: str, status: int, body: bytes,
                headers: dict[str, str] | None = None) -> None:
    """Every `operation` call of `client` gets this response instead of reaching the server."""
    service = client.meta.service_model.service_name

    def respond(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, status, headers or {}, _Body(body))

    client.meta.events.register(f"before-send.{service}.{operation}", respond)
