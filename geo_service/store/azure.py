"""The Azure Blob :class:`~geo_service.store.bucket.Bucket`: azure-storage-blob calls, nothing more.

Credentials are the SDK's standard ones: ``AZURE_STORAGE_CONNECTION_STRING``
(Azurite, or any account by key), else ``AZURE_STORAGE_ACCOUNT`` with
``AZURE_STORAGE_KEY`` or, without a key, ``DefaultAzureCredential``
(workload identity, managed identity, the Azure CLI's login).

A large object is a block blob built from staged blocks. Azure has no
"multipart upload" to name, so the handle :meth:`AzureBucket.begin` returns
is a stem of its own: when it began (milliseconds) and 16 random hex
digits. Every block id is ``<stem>-<part number:05d>``, one length for all,
as Azure asks of the blocks of one blob; a stale writer's blocks therefore
never mix with another writer's. The object's metadata rides in the handle
(after a ``.``) until :meth:`AzureBucket.complete` commits the block list,
so any process holding the handle can complete it.

Uncommitted blocks cannot be deleted one by one: :meth:`AzureBucket.abort`
drops them by committing again what is committed (or, with nothing
committed, an empty blob deleted at once), each conditional on the blob not
having changed meanwhile. :meth:`AzureBucket.pending` lists blobs that have
uncommitted blocks and no committed version; a rewrite of a committed blob
left unfinished by a dead writer is not listed, and Azure discards its
blocks after a week.
"""

import base64
import binascii
import contextlib
import datetime
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import DefaultAzureCredential
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobPrefix,
    BlobProperties,
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ExponentialRetry,
    UserDelegationKey,
    generate_blob_sas,
)

from geo_service.store.bucket import Bucket, BucketUnavailable, ObjectInfo, Part, PendingWrite
from handoff.config import ConfigError

#: Bytes per chunk when an object is streamed out, and the most read at once.
READ_CHUNK = 4 * 1024 * 1024
#: The block size of a whole-object copy (Azure takes up to 4000 MiB per block from a URL).
COPY_BLOCK = 256 * 1024 * 1024
#: A copy source's SAS, and a user delegation key, are made for this long.
SAS_LIFETIME = datetime.timedelta(hours=1)
#: A handle's stem: milliseconds since the epoch, then random hex.
_STEM = re.compile(r"\d{13}[0-9a-f]{16}")
_STEM_LENGTH = 13 + 16


def azure_client(env: Mapping[str, str] = os.environ) -> BlobServiceClient:
    """A client from the SDK's standard variables (see the module's docstring)."""
    options: dict[str, Any] = {
        # A refused connection is retried once, so an outage is told within seconds.
        "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3,
                                         retry_connect=1, random_jitter_range=1),
        "connection_timeout": 5, "read_timeout": 60,
        "max_single_get_size": READ_CHUNK, "max_chunk_get_size": READ_CHUNK}
    connection = env.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection:
        return BlobServiceClient.from_connection_string(connection, **options)
    account = env.get("AZURE_STORAGE_ACCOUNT")
    if not account:
        raise ConfigError("an az:// store needs AZURE_STORAGE_CONNECTION_STRING or "
                          "AZURE_STORAGE_ACCOUNT")
    key = env.get("AZURE_STORAGE_KEY")
    credential: Any = ({"account_name": account, "account_key": key} if key
                       else DefaultAzureCredential())
    return BlobServiceClient(f"https://{account}.blob.core.windows.net", credential=credential,
                             **options)


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Connection failures and server errors become :class:`BucketUnavailable`."""
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise BucketUnavailable(str(exc)) from exc
    except HttpResponseError as exc:
        if (exc.status_code or 0) >= 500:
            raise BucketUnavailable(str(exc)) from exc
        raise


def _new_stem() -> str:
    return f"{time.time_ns() // 1_000_000:013d}{secrets.token_hex(8)}"


def _block_id(stem: str, number: int) -> str:
    return f"{stem}-{number:05d}"


def _stem_of(block_id: str) -> str | None:
    """The stem a block id starts with; None for a block this adapter did not stage."""
    found = _STEM.match(block_id)
    return found.group() if found else None


def _started(stem: str) -> float:
    return int(stem[:13]) / 1000


def _handle(stem: str, metadata: dict[str, str] | None) -> str:
    if not metadata:
        return stem
    return f"{stem}.{base64.urlsafe_b64encode(json.dumps(metadata).encode()).decode()}"


def _handle_metadata(handle: str) -> dict[str, str]:
    _, _, encoded = handle.partition(".")
    try:
        return json.loads(base64.urlsafe_b64decode(encoded)) if encoded else {}
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not a handle of this bucket: {handle!r}") from exc


class AzureBucket(Bucket):
    """Blobs under ``prefix`` in ``container``; keys given here are relative to the prefix."""

    min_part_size = 1
    max_parts = 50_000

    def __init__(self, client: BlobServiceClient, container: str, prefix: str = "") -> None:
        self.client = client
        self.container: ContainerClient = client.get_container_client(container)
        self.prefix = f"{prefix}/" if prefix else ""
        self._delegation: UserDelegationKey | None = None
        self._delegation_lock = threading.Lock()

    def describe(self) -> str:
        return f"az://{self.container.container_name}/{self.prefix}".rstrip("/")

    def problem(self) -> str | None:
        try:
            with _unavailable():
                self.container.get_container_properties()
        except ResourceNotFoundError:
            return f"{self.describe()}: the container does not exist"
        except (BucketUnavailable, AzureError) as exc:
            return f"{self.describe()} cannot be reached: {exc}"
        return None

    # -- whole objects ----------------------------------------------------------

    def put(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        with _unavailable():
            self._blob(key).upload_blob(data, overwrite=True, metadata=metadata or {})

    def get(self, key: str) -> bytes | None:
        try:
            with _unavailable():
                return self._blob(key).download_blob().readall()
        except ResourceNotFoundError:
            return None

    def head(self, key: str) -> ObjectInfo | None:
        try:
            with _unavailable():
                props = self._blob(key).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return ObjectInfo(key, props.size, props.last_modified.timestamp(), dict(props.metadata))

    def read(self, key: str, start: int = 0, size: int | None = None) -> Iterator[bytes]:
        """Opened at once (so a missing blob raises here), streamed as it is iterated."""
        if size == 0:
            if self.head(key) is None:
                raise FileNotFoundError(key)
            return iter(())
        try:
            with _unavailable():
                download = self._blob(key).download_blob(offset=start, length=size)
        except ResourceNotFoundError:
            raise FileNotFoundError(key) from None
        except HttpResponseError as exc:
            if exc.status_code == 416:  # a start at or past the end: nothing to read
                return iter(())
            raise
        return _stream(download.chunks())

    def listing(self, prefix: str) -> Iterator[ObjectInfo]:
        with _unavailable():
            for blob in self.container.list_blobs(name_starts_with=self._key(prefix)):
                yield ObjectInfo(self._relative(blob.name), blob.size,
                                 blob.last_modified.timestamp())

    def folders(self, prefix: str) -> Iterator[str]:
        with _unavailable():
            for entry in self.container.walk_blobs(name_starts_with=self._key(prefix),
                                                   delimiter="/"):
                if isinstance(entry, BlobPrefix):
                    yield self._relative(entry.name)[len(prefix):].rstrip("/")

    def delete(self, keys: Iterable[str]) -> None:
        with _unavailable():
            for key in keys:
                with contextlib.suppress(ResourceNotFoundError):
                    self._blob(key).delete_blob()

    def copy(self, source: str, target: str) -> None:
        """Block by block from ``source``'s URL, committed at once: a copy of any size is whole."""
        info = self.head(source)
        if info is None:
            raise FileNotFoundError(source)
        handle = self.begin(target, info.metadata)
        try:
            parts = [self.copy_part(target, handle, number, source, start,
                                    min(COPY_BLOCK, info.size - start))
                     for number, start in enumerate(range(0, info.size, COPY_BLOCK), 1)]
            self.complete(target, handle, parts)
        except BaseException:
            self.abort(target, handle)
            raise

    # -- large objects, written in parts --------------------------------------

    def begin(self, key: str, metadata: dict[str, str] | None = None) -> str:
        """Nothing is sent: the blob's uncommitted blocks appear with the first part."""
        return _handle(_new_stem(), metadata)

    def put_part(self, key: str, handle: str, number: int, data: bytes | memoryview) -> Part:
        block = _block_id(handle[:_STEM_LENGTH], number)
        with _unavailable():
            body = data if isinstance(data, bytes) else bytes(data)  # the SDK takes no view
            self._blob(key).stage_block(block, body, length=len(data))
        return Part(number, block, len(data))

    def copy_part(self, key: str, handle: str, number: int, source: str, start: int,
                  size: int) -> Part:
        block = _block_id(handle[:_STEM_LENGTH], number)
        with _unavailable():
            self._blob(key).stage_block_from_url(block, self._source_url(self._key(source)),
                                                 source_offset=start, source_length=size)
        return Part(number, block, size)

    def complete(self, key: str, handle: str, parts: list[Part]) -> None:
        with _unavailable():
            self._blob(key).commit_block_list([BlobBlock(part.tag) for part in parts],
                                              metadata=_handle_metadata(handle))

    def abort(self, key: str, handle: str) -> None:
        """Drop the blob's uncommitted blocks if this handle staged any (see the module)."""
        blob = self._blob(key)
        stem = handle[:_STEM_LENGTH]
        try:
            with _unavailable():
                committed, uncommitted = blob.get_block_list("all")
                if not any(block.id.startswith(stem) for block in uncommitted):
                    return
                self._drop_uncommitted(blob, committed)
        except (ResourceNotFoundError, ResourceExistsError, ResourceModifiedError):
            pass  # gone, or committed by another writer: either way its blocks went with it

    def pending(self, prefix: str) -> Iterator[PendingWrite]:
        with _unavailable():
            for name in self._uncommitted_only(self._key(prefix)):
                try:
                    _, uncommitted = self.container.get_blob_client(name).get_block_list(
                        "uncommitted")
                except ResourceNotFoundError:
                    continue
                stems = {_stem_of(block.id) for block in uncommitted}
                for stem in sorted(stem for stem in stems if stem):
                    yield PendingWrite(self._relative(name), stem, _started(stem))

    # -- helpers -----------------------------------------------------------------

    def _drop_uncommitted(self, blob: BlobClient, committed: list[BlobBlock]) -> None:
        """Commit again what is committed (an empty blob, deleted, if nothing is)."""
        try:
            props: BlobProperties | None = blob.get_blob_properties()
        except ResourceNotFoundError:
            props = None
        if props is None:
            made = blob.commit_block_list([], if_none_match="*")
            blob.delete_blob(if_match=made["etag"])
            return
        blocks = [BlobBlock(block.id) for block in committed]
        if not blocks and props.size:  # written whole, by put: one block copied from itself
            blocks = [BlobBlock(_block_id(_new_stem(), 1))]
            blob.stage_block_from_url(blocks[0].id, self._source_url(blob.blob_name),
                                      source_offset=0, source_length=props.size)
        blob.commit_block_list(blocks, metadata=props.metadata,
                               content_settings=props.content_settings, if_match=props.etag)

    def _uncommitted_only(self, prefix: str) -> Iterator[str]:
        """Names of blobs with uncommitted blocks and no committed version, in order.

        Those listed with uncommitted blobs and not without: two listings
        walked side by side, both in name order.
        """
        committed = (blob.name for blob in self.container.list_blobs(name_starts_with=prefix))
        ahead = next(committed, None)
        for blob in self.container.list_blobs(name_starts_with=prefix,
                                              include=["uncommittedblobs"]):
            while ahead is not None and ahead < blob.name:
                ahead = next(committed, None)
            if blob.name != ahead:
                yield blob.name

    def _source_url(self, name: str) -> str:
        """The URL of the blob ``name`` with a read-only SAS, as a block copied from a URL needs."""
        blob = self.container.get_blob_client(name)
        expiry = datetime.datetime.now(datetime.UTC) + SAS_LIFETIME
        signer: dict[str, Any] = {}
        key_credential = getattr(self.client.credential, "account_key", None)
        if key_credential:
            signer["account_key"] = key_credential
        else:
            signer["user_delegation_key"] = self._delegation_key()
        sas = generate_blob_sas(self.client.account_name or "", blob.container_name,
                                blob.blob_name, permission=BlobSasPermissions(read=True),
                                expiry=expiry, **signer)
        return f"{blob.url}?{sas}"

    def _delegation_key(self) -> UserDelegationKey:
        """Without an account key a SAS is signed by a user delegation key, renewed hourly."""
        now = datetime.datetime.now(datetime.UTC)
        with self._delegation_lock:
            if self._delegation is None or _expires(self._delegation) < now + SAS_LIFETIME / 2:
                self._delegation = self.client.get_user_delegation_key(now, now + SAS_LIFETIME)
            return self._delegation

    def _blob(self, key: str) -> BlobClient:
        return self.container.get_blob_client(self._key(key))

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _relative(self, name: str) -> str:
        return name[len(self.prefix):]


def _expires(key: UserDelegationKey) -> datetime.datetime:
    expiry = key.signed_expiry or ""
    return datetime.datetime.fromisoformat(expiry.replace("Z", "+00:00"))


def _stream(chunks: Iterator[bytes]) -> Iterator[bytes]:
    with _unavailable():
        yield from chunks
