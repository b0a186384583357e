"""The S3 :class:`~geo_service.store.bucket.Bucket`: boto3 calls, nothing more.

Endpoint and credentials come from boto3's own configuration
(``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, roles...), so any
S3-compatible service works without a setting of ours. Checksums are asked
for only when the operation requires them: S3-compatible services other
than AWS often refuse the newer trailing checksums.
"""

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from geo_service.store.bucket import Bucket, BucketUnavailable, ObjectInfo, Part, PendingWrite

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
else:
    S3Client = Any

# Bodies go unsigned, as botocore already sends them to an https endpoint:
# over plain http (a store on the pod's network) it would hash every byte
# once more for the signature. The manifest's sha256, checked by the worker
# end to end, is what proves the bytes.
CONFIG = Config(request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"payload_signing_enabled": False},
                retries={"mode": "standard", "max_attempts": 4},
                connect_timeout=5, read_timeout=60, max_pool_connections=32)
#: Bytes per chunk when an object is streamed out.
READ_CHUNK = 1024 * 1024
#: DeleteObjects takes at most this many keys per call.
_DELETE_BATCH = 1000
_MISSING = {"NoSuchKey", "404", "NotFound"}


def s3_client() -> S3Client:
    """A client configured the standard way (environment, config files, roles)."""
    return boto3.client("s3", config=CONFIG)


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Connection failures and server errors become :class:`BucketUnavailable`."""
    try:
        yield
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500:
            raise BucketUnavailable(str(exc)) from exc
        raise
    except BotoCoreError as exc:
        raise BucketUnavailable(str(exc)) from exc


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _MISSING


class S3Bucket(Bucket):
    """Objects under ``prefix`` in ``bucket``; keys given here are relative to the prefix."""

    min_part_size = 5 * 1024 * 1024
    max_parts = 10_000

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def problem(self) -> str | None:
        try:
            with _unavailable():
                self.client.head_bucket(Bucket=self.bucket)
        except (BucketUnavailable, ClientError) as exc:
            return f"{self.describe()} cannot be reached: {exc}"
        return None

    # -- whole objects ----------------------------------------------------------

    def put(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        with _unavailable():
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                   Metadata=metadata or {})

    def get(self, key: str) -> bytes | None:
        try:
            with _unavailable():
                answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                return answer["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def head(self, key: str) -> ObjectInfo | None:
        try:
            with _unavailable():
                answer = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return ObjectInfo(key, answer["ContentLength"], answer["LastModified"].timestamp(),
                          dict(answer.get("Metadata", {})))

    def read(self, key: str, start: int = 0, size: int | None = None) -> Iterator[bytes]:
        """Opened at once (so a missing object raises here), streamed as it is iterated."""
        if size == 0:
            if self.head(key) is None:
                raise FileNotFoundError(key)
            return iter(())
        options: dict[str, Any] = {}
        if start or size is not None:
            end = "" if size is None else str(start + size - 1)
            options["Range"] = f"bytes={start}-{end}"
        try:
            with _unavailable():
                answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key),
                                                **options)
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from None
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return iter(())
            raise
        return _stream(answer["Body"])

    def listing(self, prefix: str) -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix))
        with _unavailable():
            for page in pages:
                for entry in page.get("Contents", []):
                    yield ObjectInfo(self._relative(entry["Key"]), entry["Size"],
                                     entry["LastModified"].timestamp())

    def folders(self, prefix: str) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix), Delimiter="/")
        with _unavailable():
            for page in pages:
                for entry in page.get("CommonPrefixes", []):
                    yield self._relative(entry["Prefix"])[len(prefix):].rstrip("/")

    def delete(self, keys: Iterable[str]) -> None:
        batch = [self._key(key) for key in keys]
        with _unavailable():
            for first in range(0, len(batch), _DELETE_BATCH):
                self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": key} for key in batch[first:first + _DELETE_BATCH]],
                    "Quiet": True})

    def copy(self, source: str, target: str) -> None:
        with _unavailable():
            self.client.copy_object(Bucket=self.bucket, Key=self._key(target),
                                    CopySource={"Bucket": self.bucket, "Key": self._key(source)})

    # -- large objects, written in parts --------------------------------------

    def begin(self, key: str, metadata: dict[str, str] | None = None) -> str:
        with _unavailable():
            answer = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._key(key),
                                                         Metadata=metadata or {})
        return answer["UploadId"]

    def put_part(self, key: str, handle: str, number: int, data: bytes | memoryview) -> Part:
        with _unavailable():
            answer = self.client.upload_part(Bucket=self.bucket, Key=self._key(key),
                                             UploadId=handle, PartNumber=number,
                                             Body=data if isinstance(data, bytes) else bytes(data))
        return Part(number, answer["ETag"], len(data))

    def copy_part(self, key: str, handle: str, number: int, source: str, start: int,
                  size: int) -> Part:
        with _unavailable():
            answer = self.client.upload_part_copy(
                Bucket=self.bucket, Key=self._key(key), UploadId=handle, PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": self._key(source)},
                CopySourceRange=f"bytes={start}-{start + size - 1}")
        return Part(number, answer["CopyPartResult"]["ETag"], size)

    def complete(self, key: str, handle: str, parts: list[Part]) -> None:
        with _unavailable():
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), UploadId=handle,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.tag}
                                           for p in parts]})

    def abort(self, key: str, handle: str) -> None:
        try:
            with _unavailable():
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key),
                                                   UploadId=handle)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
                raise

    def pending(self, prefix: str) -> Iterator[PendingWrite]:
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix))
        with _unavailable():
            for page in pages:
                for upload in page.get("Uploads", []):
                    yield PendingWrite(self._relative(upload["Key"]), upload["UploadId"],
                                       upload["Initiated"].timestamp())

    # -- keys --------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _relative(self, key: str) -> str:
        return key[len(self.prefix):]


def _stream(body: Any) -> Iterator[bytes]:
    """The response body in chunks, closed when done or abandoned."""
    with contextlib.closing(body), _unavailable():
        yield from body.iter_chunks(READ_CHUNK)
