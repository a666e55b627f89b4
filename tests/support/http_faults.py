"""Service faults injected at the HTTP layer of real clients, as the services send them.

- AWS: a botocore `before-send` hook on a boto3 session answers a chosen share of calls itself, with
  the status, headers and body S3 or DynamoDB would send (the request never reaches moto), so the
  SDK's retry logic, our adapters' error translation and the workflow's Retry all see the real thing.
- AWS, "done but reply lost": a `before-send` hook delivers the first attempt of every chosen write
  to the service itself, drops the answer and raises the read timeout a lost reply causes, so the SDK
  sends the very same request again (RepliesLost).
- OpenAI: an httpx transport for the `openai` SDK that answers a share of requests with 429 (with
  Retry-After) or 500 before they reach the fake server.

Faults are drawn from a seeded random generator: a run is repeatable.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session

# (HTTP status, error code, message) as each service sends them
S3_TRANSIENT = ((503, "SlowDown", "Please reduce your request rate."),
                (500, "InternalError", "We encountered an internal error. Please try again."))
DYNAMODB_TRANSIENT = ((400, "ProvisionedThroughputExceededException",
                       "The level of configured provisioned throughput for the table was exceeded."),
                      (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."))
S3_ACCESS_DENIED = ((403, "AccessDenied", "Access Denied"),)


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


def _s3_error(url: str, status: int, code: str, message: str) -> AWSResponse:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>FAULT</RequestId></Error>").encode()
    headers = {"Content-Type": "application/xml", "x-amz-request-id": "FAULT"}
    return AWSResponse(url, status, headers, _Body(body))


def _dynamodb_error(url: str, status: int, code: str, message: str) -> AWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode()
    return AWSResponse(url, status, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code},
                       _Body(body))


class AwsFaults:
    """Attach to a boto3 Session: every client made from it afterwards gets the faults.

    `plans` maps a service ("s3", "dynamodb") to the faults to draw from; `rate` is the share of calls
    answered with one (1.0: every call). `only` narrows the calls (service, operation) -> bool."""

    def __init__(self, plans: dict[str, tuple[tuple[int, str, str], ...]], *, rate: float, seed: int = 13,
                 only: Callable[[str, str], bool] | None = None) -> None:
        self.plans = plans
        self.rate = rate
        self.only = only
        self.enabled = True
        self.injected: Counter[tuple[str, str, str]] = Counter()  # (service, operation, code)
        self.calls: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def attach(self, session: Any) -> None:
        session.events.register("before-send", self._before_send)

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        plan = self.plans.get(service)
        with self._lock:
            self.calls[service] += 1
            if not (self.enabled and plan) or (self.only and not self.only(service, operation)):
                return None
            if self._random.random() >= self.rate:
                return None
            status, code, message = self._random.choice(plan)
            self.injected[service, operation, code] += 1
        make = _dynamodb_error if service == "dynamodb" else _s3_error
        return make(request.url, status, code, message)


# Every call of the project's S3 and DynamoDB adapters that changes something.
WRITE_OPERATIONS = {
    "s3": frozenset({"PutObject", "DeleteObject", "DeleteObjects", "CopyObject", "CreateMultipartUpload",
                     "UploadPart", "CompleteMultipartUpload"}),
    "dynamodb": frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}),
}


class RepliesLost:
    """Attach to a boto3 Session: the first attempt of every write in `operations` (service -> names)
    reaches the service and takes effect, but its reply is lost (botocore's ReadTimeoutError), so the
    SDK's retry sends the same request again, as it would on AWS. `delivered` counts the writes so
    repeated, by (service, operation, HTTP status of the lost reply).

    DynamoDB makes a repeated TransactWriteItems idempotent by its ClientRequestToken (which botocore
    fills in once per call, so every retry carries the same): "Any subsequent calls with the same client
    token return successfully without making any changes" for ten minutes (TransactWriteItems API
    reference). moto applies it again instead, so the repeat of a transaction that landed is answered
    here as DynamoDB answers it."""

    def __init__(self, operations: dict[str, frozenset[str]] = WRITE_OPERATIONS) -> None:
        self.operations = operations
        self.enabled = True
        self.delivered: Counter[tuple[str, str, int]] = Counter()
        self._http = URLLib3Session()
        self._landed_transactions: dict[str, AWSResponse] = {}  # invocation id -> the lost reply
        self._lock = threading.Lock()

    def attach(self, session: Any) -> None:
        session.events.register("before-send", self._before_send)

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        retries = request.context.get("retries", {})
        invocation = retries.get("invocation-id", "")
        if not (self.enabled and operation in self.operations.get(service, ())):
            return None
        if retries.get("attempt", 1) != 1:
            with self._lock:
                landed = self._landed_transactions.pop(invocation, None)
            return landed  # None: the repeat goes to the service
        lost = self._http.send(request)  # done: the write lands on the service
        request.reset_stream()  # the SDK sends the same body again
        with self._lock:
            self.delivered[service, operation, lost.status_code] += 1
            if operation == "TransactWriteItems" and lost.status_code == 200:
                self._landed_transactions[invocation] = AWSResponse(
                    request.url, 200, {"Content-Type": "application/x-amz-json-1.0"}, _Body(lost.content))
        raise ReadTimeoutError(endpoint_url=request.url)


class OpenAIFaults(httpx.BaseTransport):
    """An httpx transport: every `every`-th request is answered with 429 (Retry-After: `retry_after`
    seconds) or 500, in turn (a run makes few OpenAI calls: a fixed rhythm makes sure both happen)."""

    def __init__(self, *, every: int = 10, retry_after: int = 2) -> None:
        self._inner = httpx.HTTPTransport()
        self.every = every
        self.retry_after = retry_after
        self.requests = 0
        self.injected: Counter[tuple[str, int]] = Counter()  # (path, status)
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests += 1
            hit = self.requests % self.every == self.every // 2
            status = (429, 500)[sum(self.injected.values()) % 2] if hit else 0
            if hit:
                self.injected[request.url.path, status] += 1
        if status == 429:
            headers = {"Retry-After": str(self.retry_after), "x-request-id": "fault"}
            return httpx.Response(429, headers=headers, json={"error": {
                "message": "Rate limit reached for requests", "type": "requests",
                "code": "rate_limit_exceeded"}})
        if status == 500:
            return httpx.Response(500, headers={"x-request-id": "fault"}, json={"error": {
                "message": "The server had an error while processing your request.", "type": "server_error"}})
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
