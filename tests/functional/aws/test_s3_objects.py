"""S3-specific behaviour of S3ObjectStore beyond the shared contract: multipart uploads (managed and
conditional), lost races at CompleteMultipartUpload, and how service errors are translated."""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
from pathlib import Path
from typing import Any

import pytest
from aws_faults import answer_with, single_attempt_client
from boto3.s3.transfer import TransferConfig

from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.stores.exceptions import (
    ObjectNotFoundError,
    PreconditionFailedError,
    StoreUnavailableError,
)
from embedding_ingest.stores.s3_objects import S3ObjectStore

MIB = 1024 * 1024
# S3's smallest part is 5 MiB; an 11 MiB file is then three parts.
SMALL_PARTS = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "snapshot.tar"
    data = os.urandom(11 * MIB)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture
def multipart_store(s3_client: Any, s3_bucket: str) -> S3ObjectStore:
    return S3ObjectStore(s3_client, s3_bucket, transfer_config=SMALL_PARTS)


def _pending_uploads(client: Any, bucket: str) -> list[dict[str, Any]]:
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_large_file_goes_up_in_parts_and_comes_back_whole(
        multipart_store: S3ObjectStore, big_file: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = big_file
    etag = multipart_store.upload_file("snapshots/lines/v1/snapshot.tar", path)
    assert etag.endswith("-3")  # S3's multipart etag: md5 of part md5s, then the part count
    assert multipart_store.head("snapshots/lines/v1/snapshot.tar").etag == etag
    restored = tmp_path / "cache" / "snapshot.tar"
    multipart_store.download_file("snapshots/lines/v1/snapshot.tar", restored)
    assert hashlib.sha256(restored.read_bytes()).hexdigest() == digest
    assert [p.name for p in restored.parent.iterdir()] == ["snapshot.tar"]  # no temp file left


def test_conditional_large_upload_creates_once_and_never_replaces(
        multipart_store: S3ObjectStore, big_file: tuple[Path, str], s3_client: Any,
        s3_bucket: str, tmp_path: Path) -> None:
    path, digest = big_file
    etag = multipart_store.upload_file("archive.tar", path, if_none_match=True)
    assert etag.endswith("-3")
    other = tmp_path / "other.tar"
    other.write_bytes(os.urandom(6 * MIB))
    with pytest.raises(PreconditionFailedError, match="archive.tar"):
        multipart_store.upload_file("archive.tar", other, if_none_match=True)
    assert hashlib.sha256(multipart_store.get_bytes("archive.tar")).hexdigest() == digest
    assert _pending_uploads(s3_client, s3_bucket) == []


def test_conditional_large_upload_losing_the_race_at_completion_leaves_the_winner_and_no_parts(
        multipart_store: S3ObjectStore, big_file: tuple[Path, str], s3_client: Any,
        s3_bucket: str, moto_endpoint: Any) -> None:
    # Another writer creates the key while our parts are uploading: after our early existence
    # check, before CompleteMultipartUpload. The server-side precondition must refuse ours.
    rival = moto_endpoint.client("s3")

    def rival_writes_first(**_: Any) -> None:
        rival.put_object(Bucket=s3_bucket, Key="archive.tar", Body=b"the winner")

    s3_client.meta.events.register_first("before-call.s3.CompleteMultipartUpload", rival_writes_first)
    with pytest.raises(PreconditionFailedError, match="archive.tar"):
        multipart_store.upload_file("archive.tar", big_file[0], if_none_match=True)
    assert multipart_store.get_bytes("archive.tar") == b"the winner"
    assert _pending_uploads(s3_client, s3_bucket) == []  # aborted: no invisible parts billed


def test_download_of_missing_key_names_key_and_bucket(s3_object_store: S3ObjectStore,
                                                      s3_bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError, match=f"deltas/x.tar.*{s3_bucket}"):
        s3_object_store.download_file("deltas/x.tar", tmp_path / "x.tar")
    assert list(tmp_path.iterdir()) == []


def test_missing_bucket_is_a_configuration_error_naming_it(s3_client: Any) -> None:
    store = S3ObjectStore(s3_client, "no-such-bucket-anywhere")
    with pytest.raises(ConfigurationError, match="no-such-bucket-anywhere"):
        store.put_bytes("k", b"v")


def test_throttling_and_server_errors_are_transient(moto_endpoint: Any, s3_bucket: str) -> None:
    client = single_attempt_client("s3", moto_endpoint.url, moto_endpoint.region)
    store = S3ObjectStore(client, s3_bucket)
    answer_with(client, "PutObject", 503,
                b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>")
    answer_with(client, "GetObject", 500,
                b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message>"
                b"</Error>")
    with pytest.raises(StoreUnavailableError, match="SlowDown") as slow:
        store.put_bytes("manifest.json", b"{}", if_none_match=True)
    assert slow.value.transient
    with pytest.raises(StoreUnavailableError, match="InternalError"):
        store.get_bytes("manifest.json")


def test_conditional_request_conflict_counts_as_a_lost_precondition(
        moto_endpoint: Any, s3_bucket: str) -> None:
    # S3 answers 409 when two conditional writes to one key overlap in flight.
    client = single_attempt_client("s3", moto_endpoint.url, moto_endpoint.region)
    answer_with(client, "PutObject", 409,
                b"<Error><Code>ConditionalRequestConflict</Code><Message>A conflicting operation "
                b"occurred.</Message></Error>")
    with pytest.raises(PreconditionFailedError, match="pointer.json"):
        S3ObjectStore(client, s3_bucket).put_bytes("pointer.json", b"{}", if_match="abc")


def test_unreachable_endpoint_is_transient(s3_bucket: str, moto_endpoint: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = single_attempt_client("s3", f"http://127.0.0.1:{port}", moto_endpoint.region)
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        S3ObjectStore(client, s3_bucket).get_bytes("anything")


def test_pickled_store_reconnects_to_the_same_bucket(s3_object_store: S3ObjectStore) -> None:
    s3_object_store.put_bytes("shared/state.json", b'{"n": 1}')
    clone = pickle.loads(pickle.dumps(s3_object_store))
    assert clone.location == s3_object_store.location
    assert clone.get_bytes("shared/state.json") == b'{"n": 1}'
