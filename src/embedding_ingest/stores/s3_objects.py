"""ObjectStore on an S3 bucket.

Conditional writes use S3's own preconditions: `IfNoneMatch="*"` (create only if absent) and
`IfMatch=<etag>` (compare-and-swap), so the check and the write are one step on the server.

Large files stream through boto3's managed transfer (multipart, several threads). The managed
transfer does not accept `IfNoneMatch`, so a *conditional* upload of a large file is a multipart
upload we drive ourselves, with the precondition on CompleteMultipartUpload: nothing becomes
visible unless the key was still absent at that moment, and a lost race aborts the upload.

Etags are returned without S3's surrounding quotes, like the local store's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.stores.exceptions import (
    ObjectNotFoundError,
    PreconditionFailedError,
    StoreUnavailableError,
)
from embedding_ingest.stores.ports import ObjectStore
from embedding_ingest.stores.records import ObjectInfo

MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024  # S3 wants >= 5 MiB for every part but the last

_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                   "RequestLimitExceeded", "ServiceUnavailable", "InternalError", "503", "500"}
_CONFIG_CODES = {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def _strip_etag(etag: str) -> str:
    return etag.strip('"')


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


class S3ObjectStore(ObjectStore):
    def __init__(self, client: Any, bucket: str, *,
                 transfer_config: TransferConfig | None = None) -> None:
        self._client = client
        self.bucket = bucket
        self.location = bucket
        self._transfer = transfer_config or TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE)

    # -- pickling: a boto3 client holds sockets and locks, so rebuild it from where it pointed ---
    def __getstate__(self) -> dict[str, Any]:
        from embedding_ingest.stores.aws_clients import budget_of

        meta = self._client.meta
        return {"bucket": self.bucket, "endpoint_url": meta.endpoint_url, "region": meta.region_name,
                "transfer": self._transfer, "budget": budget_of(self._client)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from embedding_ingest.stores.aws_clients import make_client

        client = make_client("s3", endpoint_url=state["endpoint_url"], region=state["region"],
                             budget_seconds=state.get("budget"))
        self.__init__(client, state["bucket"], transfer_config=state["transfer"])

    # -- error translation ------------------------------------------------------------------
    @contextlib.contextmanager
    def _translated(self, key: str, action: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            translated = self._translate(exc, key, action)
            if translated is exc:
                raise
            raise translated from exc
        except (ConnectionError, HTTPClientError) as exc:
            raise StoreUnavailableError(
                f"S3 unreachable while trying to {action} {key!r} in {self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            # e.g. missing credentials: retrying the same call cannot help
            raise ConfigurationError(f"S3 {action} of {key!r} in {self.bucket} failed: {exc}") from exc

    def _translate(self, exc: ClientError, key: str, action: str) -> Exception:
        code, status = _error_code(exc), _http_status(exc)
        if code in _NOT_FOUND_CODES:
            return ObjectNotFoundError(key, self.bucket)
        if code in _PRECONDITION_CODES or status in (409, 412):
            return PreconditionFailedError(key, f"S3 refused the conditional {action} ({code})")
        if code in _THROTTLE_CODES or status >= 500 or status == 429:
            return StoreUnavailableError(f"S3 {action} of {key!r} in {self.bucket}: {code} (retry)")
        if code in _CONFIG_CODES:
            return ConfigurationError(f"S3 {action} of {key!r} in bucket {self.bucket!r}: {code}")
        return exc

    # -- small objects ----------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, *, if_none_match: bool = False,
                  if_match: str | None = None) -> str:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data}
        if if_none_match:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = f'"{_strip_etag(if_match)}"'
        with self._translated(key, "put"):
            try:
                response = self._client.put_object(**args)
            except ClientError as exc:
                # IfMatch on an absent key is a lost compare-and-swap, not a missing object
                if if_match is not None and _error_code(exc) in _NOT_FOUND_CODES:
                    raise PreconditionFailedError(key, "object is absent") from exc
                raise
        return _strip_etag(response["ETag"])

    def get_bytes(self, key: str) -> bytes:
        with self._translated(key, "get"):
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read()

    def head(self, key: str) -> ObjectInfo | None:
        try:
            with self._translated(key, "head"):
                response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFoundError:
            return None
        return ObjectInfo(key=key, size=response["ContentLength"], etag=_strip_etag(response["ETag"]),
                          last_modified=response["LastModified"].timestamp())

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # S3 lists keys in UTF-8 byte order, which is code-point order: the order `sorted` gives.
        paginator = self._client.get_paginator("list_objects_v2")
        with self._translated(prefix, "list"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    yield ObjectInfo(key=entry["Key"], size=entry["Size"],
                                     etag=_strip_etag(entry["ETag"]),
                                     last_modified=entry["LastModified"].timestamp())

    def delete(self, key: str) -> None:
        with self._translated(key, "delete"):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    # -- large files ------------------------------------------------------------------------
    def upload_file(self, key: str, path: Path, *, if_none_match: bool = False, move: bool = False,
                    sha256: str | None = None) -> str:
        """ObjectStore.upload_file (ports.py); with `move`, the local file is deleted once uploaded.
        `sha256` is not used: S3's ETag is its own (an md5, or of the parts' md5s)."""
        etag = self._upload_file(key, Path(path), if_none_match=if_none_match)
        if move:  # the caller gave the file up: free the local disk now (a Lambda's /tmp is small)
            Path(path).unlink(missing_ok=True)
        return etag

    def _upload_file(self, key: str, path: Path, *, if_none_match: bool) -> str:
        size = path.stat().st_size
        if if_none_match:
            if self.exists(key):  # cheap early exit; the server-side precondition decides
                raise PreconditionFailedError(key, "object already exists")
            if size < self._transfer.multipart_threshold:
                with path.open("rb") as body, self._translated(key, "upload"):
                    response = self._client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                                       IfNoneMatch="*")
                return _strip_etag(response["ETag"])
            return self._conditional_multipart_upload(key, path)
        with path.open("rb") as body, self._translated(key, "upload"):
            self._client.upload_fileobj(body, self.bucket, key, Config=self._transfer)
        info = self.head(key)
        if info is None:
            raise StoreUnavailableError(f"S3 upload of {key!r} to {self.bucket} is not visible yet")
        return info.etag

    def _conditional_multipart_upload(self, key: str, path: Path) -> str:
        with self._translated(key, "upload"):
            upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = []
            with path.open("rb") as body, self._translated(key, "upload"):
                part_number = 1
                while chunk := body.read(self._transfer.multipart_chunksize):
                    response = self._client.upload_part(Bucket=self.bucket, Key=key, Body=chunk,
                                                        UploadId=upload_id, PartNumber=part_number)
                    parts.append({"ETag": response["ETag"], "PartNumber": part_number})
                    part_number += 1
            with self._translated(key, "upload"):
                response = self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, IfNoneMatch="*",
                    MultipartUpload={"Parts": parts})
        except BaseException:
            # A failed or lost upload must not leave billed, invisible parts behind.
            with contextlib.suppress(ClientError, BotoCoreError):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return _strip_etag(response["ETag"])

    def download_file(self, key: str, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, self._translated(key, "download"):
                self._client.download_fileobj(self.bucket, key, out, Config=self._transfer)
            os.replace(tmp_name, path)  # readers never see a half-written file
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
