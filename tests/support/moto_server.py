"""Real-HTTP AWS for tests: moto's ThreadedMotoServer on 127.0.0.1 (a free port), dummy credentials,
and fixtures giving a fresh bucket / table / adapter per test.

Use from a conftest (tests/support is not a package):

    sys.path.insert(0, str(<repo>/"tests"/"support"))
    from moto_server import moto_endpoint, s3_bucket, s3_object_store, dynamodb_table, dynamo_ledger

One server per pytest process (session scope); every test gets uniquely named resources, so tests
never see each other's data and the server needs no reset.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

if TYPE_CHECKING:
    from embedding_ingest.stores.dynamo_ledger import DynamoLedger
    from embedding_ingest.stores.s3_objects import S3ObjectStore

# The product's adapters are imported inside their fixtures: tests/conftest.py loads this module in every
# session, and the engine's tests run in one where embedding_ingest cannot be imported
# (tests/asl_local_isolated).

REGION = "us-east-1"
_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
_counter = itertools.count()


@dataclass(frozen=True)
class MotoEndpoint:
    url: str
    region: str = REGION

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=self.region)


def unique_name(prefix: str) -> str:
    """Lower-case, DNS-safe, unique across processes (xdist workers share nothing but the names)."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


class _OneRequestAtATime:
    """WSGI wrapper running moto's handlers one at a time.

    Real DynamoDB transactions are serializable and real S3 conditional puts are atomic. Moto's are
    check-then-write in Python with no lock (a TransactWriteItems even deep-copies the table while
    other request threads change it), so concurrent requests could both pass a condition, or crash.
    Serializing requests gives back the service's guarantees; clients still race freely."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


class SerializedMotoServer(ThreadedMotoServer):
    def _server_entry(self) -> None:
        self._server = make_server(
            self._ip_address,
            self._port,
            _OneRequestAtATime(DomainDispatcherApplication(create_backend_app)),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
        self._server_ready_event.set()
        self._server.serve_forever()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[MotoEndpoint]:
    saved = {name: os.environ.get(name) for name in _DUMMY_ENV}
    os.environ.update(_DUMMY_ENV)  # never let a test reach a real account
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = SerializedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoEndpoint(url=f"http://{host}:{port}")
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_client(moto_endpoint: MotoEndpoint) -> Any:
    return moto_endpoint.client("s3")


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    name = unique_name("bucket")
    s3_client.create_bucket(Bucket=name)
    yield name
    # empty and drop it, so a long session does not keep every test's bytes in memory
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for entry in page.get("Contents", []):
            s3_client.delete_object(Bucket=name, Key=entry["Key"])
    s3_client.delete_bucket(Bucket=name)


@pytest.fixture
def s3_object_store(s3_client: Any, s3_bucket: str) -> S3ObjectStore:
    from embedding_ingest.stores.s3_objects import S3ObjectStore

    return S3ObjectStore(s3_client, s3_bucket)


@pytest.fixture
def dynamodb_client(moto_endpoint: MotoEndpoint) -> Any:
    return moto_endpoint.client("dynamodb")


@pytest.fixture
def dynamodb_table(dynamodb_client: Any) -> Iterator[str]:
    from embedding_ingest.stores.dynamo_schema import ensure_table

    name = unique_name("ledger")
    ensure_table(dynamodb_client, name)
    yield name
    dynamodb_client.delete_table(TableName=name)


@pytest.fixture
def dynamo_ledger(dynamodb_client: Any, dynamodb_table: str) -> Iterator[DynamoLedger]:
    from embedding_ingest.stores.dynamo_ledger import DynamoLedger

    ledger = DynamoLedger(dynamodb_client, dynamodb_table)
    yield ledger
    ledger.close()
