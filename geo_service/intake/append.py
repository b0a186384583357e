"""Appends one request body to a resumable upload at an offset, each byte once.

A resumable upload has one file and a progress record: how
much of the file is durable, and the sha256 state at that offset. rehashes'
sha256 state serialises (hashlib's does not), so the whole file's digest is
ready when the last byte arrives, without reading the file again. Only when
the record is behind the file, after a writer died between an fsync and the
record, is the tail read again; with no usable record, the whole file is.

Bytes go straight into the file. They count once they are fsynced and
recorded: every :data:`CHECKPOINT` bytes, at the end of the body, and when
the body breaks off. A body with an ``Upload-Checksum`` counts whole or not
at all: until it is verified, its record is marked tentative, so even a
writer killed half-way leaves the upload as it was before that body.
"""

import base64
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from rehashes import PySha256

from geo_service.store import AppendWriter, UploadStore
from handoff.form_consumer import TooLarge
from handoff.server import metrics
from handoff.server.blocking import off_loop
from handoff.tus import Checksum

# Bytes appended between two durable records while a body streams in: what a
# writer killed mid-body can lose at most, and what resuming reads again.
CHECKPOINT = 64 * 1024**2


class OffsetMismatch(Exception):
    """The body was sent for another offset than the upload's durable one."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"the upload's offset is {offset}")
        self.offset = offset


class ChecksumMismatch(Exception):
    """The body's digest differs from its Upload-Checksum; none of it was kept."""


class LengthError(Exception):
    """A length declared for a deferred-length upload does not fit it."""


@dataclass(frozen=True)
class Progress:
    """The durable part of a resumable upload: its offset and the sha256 state there."""

    offset: int
    state: bytes
    tentative: bool = False

    @classmethod
    def empty(cls) -> "Progress":
        return cls(0, PySha256().serialize())

    @classmethod
    def load(cls, record: dict[str, Any] | None) -> "Progress | None":
        """The record's progress; None when it is missing or its state unusable."""
        try:
            assert record is not None
            state = base64.b64decode(record["sha256_state"])
            PySha256.deserialize(state)
            return cls(int(record["offset"]), state, bool(record.get("tentative")))
        except Exception:
            return None

    def record(self) -> dict[str, Any]:
        return {"offset": self.offset, "sha256_state": base64.b64encode(self.state).decode(),
                "tentative": self.tentative, "saved_at": time.time()}

    def hasher(self) -> PySha256:
        return PySha256.deserialize(self.state)

    def sha256(self) -> str:
        return str(self.hasher().finalize())


class Appender:
    """Appends to one resumable upload; the caller holds the upload's lock."""

    def __init__(self, store: UploadStore, upload_id: str, max_length: int) -> None:
        self.store = store
        self.upload_id = upload_id
        self.max_length = max_length
        self.info: dict[str, Any] = store.info(upload_id) or {}

    @property
    def length(self) -> int | None:
        return self.info.get("length")

    def settle(self) -> Progress:
        """The durable progress, after repairing what a killed writer left behind.

        A tentative record (a checksummed body never verified) is rolled
        back; a file longer than its record is fsynced and its tail hashed,
        since those bytes are the client's, in order; a record that cannot
        be used is rebuilt from the whole file.
        """
        recorded = Progress.load(self.store.progress(self.upload_id))
        size = self.store.durable_size(self.upload_id)
        if recorded is not None and recorded.tentative:
            self.store.truncate(self.upload_id, recorded.offset)
            return self.save(replace(recorded, tentative=False))
        if recorded is not None and recorded.offset == size:
            return recorded
        start = recorded if recorded is not None and recorded.offset < size else Progress.empty()
        return self.save(off_loop(self._hash_tail, start, size))

    def declare_length(self, length: int, offset: int) -> None:
        """Fix a deferred length (``Upload-Length`` on a later body)."""
        if self.length is not None:
            if length != self.length:
                raise LengthError(f"the upload's length is {self.length}, not {length}")
            return
        if length < offset or length > self.max_length:
            raise LengthError(f"a length of {length} does not fit: {offset} bytes are stored "
                              f"and the limit is {self.max_length}")
        self.info = {**self.info, "length": length}
        self.store.set_info(self.upload_id, self.info)

    def append(self, progress: Progress, offset: int, chunks: Iterable[bytes],
               checksum: Checksum | None, check: Callable[[], None]) -> Progress:
        """Write ``chunks`` at ``offset``; returns the new durable progress.

        ``check`` is called after every chunk and raises when the writer must
        let go (another request asked for the lock, or the upload was
        cancelled): what was written so far is then kept as for a body that
        broke off.
        """
        if offset != progress.offset:
            raise OffsetMismatch(progress.offset)
        if checksum is not None:
            progress = self.save(replace(progress, tentative=True))
        writer = _Writer(self.store.open_appender(self.upload_id, offset), progress, checksum,
                         self.limit())
        complete = False
        try:
            writer.write_all(chunks, check, self.save)
            complete = True
        finally:
            keep = checksum is None or (complete and writer.checksum_matches())
            progress = self._keep(writer) if keep else self._roll_back(writer)
        if not keep:
            raise ChecksumMismatch("the body does not match its Upload-Checksum")
        return progress

    def manifest(self, progress: Progress) -> dict[str, Any]:
        """The manifest of the upload whose last byte ``progress`` covers, as multipart makes it."""
        info = self.info
        files = [{"field": "file", "name": info["filename"],
                  "content_type": info["content_type"], "size": progress.offset,
                  "sha256": progress.sha256()}]
        return {"id": self.upload_id, "tenant": self.store.tenant(self.upload_id),
                "purpose": info["purpose"], "metadata": info["metadata"], "files": files,
                "size": progress.offset, "created": time.time()}

    def limit(self) -> int:
        return self.max_length if self.length is None else self.length

    def _keep(self, writer: "_Writer") -> Progress:
        writer.close(sync=True)
        return self.save(writer.progress())

    def _roll_back(self, writer: "_Writer") -> Progress:
        writer.close(sync=False)
        self.store.truncate(self.upload_id, writer.start.offset)
        return self.save(replace(writer.start, tentative=False))

    def save(self, progress: Progress) -> Progress:
        self.store.save_progress(self.upload_id, progress.record())
        return progress

    def _hash_tail(self, start: Progress, size: int) -> Progress:
        """``start`` advanced over the file's (durable) bytes from its offset up to ``size``."""
        hasher = start.hasher()
        for chunk in self.store.read_file(self.upload_id, 0, start.offset, size - start.offset):
            hasher.update(chunk)
        return Progress(size, hasher.serialize())


class _Writer:
    """One body on its way into the file: where it stands, and its digests so far."""

    def __init__(self, file: AppendWriter, start: Progress, checksum: Checksum | None,
                 limit: int) -> None:
        self.start = start
        self._checksum = checksum
        self._digest = checksum.hasher() if checksum is not None else None
        self._hasher = start.hasher()
        self._limit = limit
        self._offset = start.offset
        self._synced = start.offset
        self._file = file

    def write_all(self, chunks: Iterable[bytes], check: Callable[[], None],
                  save: Callable[[Progress], Progress]) -> None:
        check()
        for chunk in chunks:
            if self._offset + len(chunk) > self._limit:
                raise TooLarge(f"the body goes past the upload's length of {self._limit} bytes")
            self._write(bytes(chunk))
            check()
            if self._checksum is None and self._offset - self._synced >= CHECKPOINT:
                self._sync()
                save(self.progress())

    def _write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hasher.update(chunk)
        if self._digest is not None:
            self._digest.update(chunk)
        self._offset += len(chunk)
        metrics.STORED_BYTES.inc(len(chunk))

    def _sync(self) -> None:
        self._synced = self._file.sync()

    def close(self, sync: bool) -> None:
        try:
            if sync:
                self._sync()
        finally:
            self._file.close()

    def progress(self) -> Progress:
        return Progress(self._offset, self._hasher.serialize())

    def checksum_matches(self) -> bool:
        assert self._checksum is not None and self._digest is not None
        return bool(self._digest.digest() == self._checksum.digest)
