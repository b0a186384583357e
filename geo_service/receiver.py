"""Writes one incoming multipart stream into the store, each byte once.

File bytes go straight into their final files while being hashed; nothing
is spooled. Only when every file is fsynced is the manifest sealed, so a
reader that finds a manifest finds complete files. A cancel is looked for
after every chunk and once more before sealing: the writer holds the lock,
so it is the one that stops.
"""

import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from geo_service.store import UploadStore
from handoff import metrics
from handoff.auth import ANONYMOUS
from handoff.blocking import off_loop
from handoff.form import FieldError, UploadForm
from handoff.multipart import FileData, FileEnd, FileStart, MalformedForm, ParserLimits


class TooLarge(Exception):
    """A file or the whole upload went over its limit."""


class Cancelled(Exception):
    """The upload's tenant cancelled it while it was being received."""


@dataclass(frozen=True)
class Limits:
    max_file_size: int
    max_upload_size: int
    form: ParserLimits


@dataclass
class _Open:
    handle: BinaryIO
    name: str
    filename: str
    content_type: str
    size: int = 0
    sha256: Any = field(default_factory=hashlib.sha256)


class Receiver:
    """Consumes the body of ``POST /uploads/<id>`` for one upload."""

    def __init__(self, store: UploadStore, upload_id: str, purposes: frozenset[str] | set[str],
                 limits: Limits, tenant: str = ANONYMOUS):
        self.store = store
        self.upload_id = upload_id
        self.tenant = tenant
        self.purposes = purposes
        self.limits = limits
        self.files: list[dict[str, Any]] = []
        self.total = 0
        self._open: _Open | None = None

    def receive(self, chunks: Iterable[bytes], boundary: bytes) -> dict[str, Any]:
        """Write every file in ``chunks``, then seal and return the manifest."""
        form = UploadForm(boundary, self.limits.form)
        try:
            for chunk in chunks:
                for event in form.feed(chunk):
                    self._on(event)
                self._check_cancel()
            for event in form.feed(None):
                self._on(event)
        finally:
            self._close()
        if not self.files:
            raise MalformedForm("the upload contains no file part")
        manifest = self._manifest(form)
        self._check_cancel()
        self.store.seal(self.upload_id, manifest)
        return manifest

    def _check_cancel(self) -> None:
        if self.store.cancelled(self.upload_id):
            raise Cancelled(f"upload {self.upload_id} was cancelled")

    def _on(self, event: object) -> None:
        if isinstance(event, FileData):
            self._write(event.data)
        elif isinstance(event, FileStart):
            self._start(event)
        elif isinstance(event, FileEnd):
            self._end()

    def _start(self, event: FileStart) -> None:
        path = self.store.file_path(self.upload_id, len(self.files))
        handle = open(path, "xb", buffering=0)  # noqa: SIM115 - closed in _end/_close
        self._open = _Open(handle, event.name, event.filename, event.content_type)

    def _write(self, data: bytes | memoryview) -> None:
        current = self._open
        assert current is not None
        current.size += len(data)
        self.total += len(data)
        if current.size > self.limits.max_file_size:
            raise TooLarge(f"file {current.filename!r} exceeds {self.limits.max_file_size} bytes")
        if self.total > self.limits.max_upload_size:
            raise TooLarge(f"upload exceeds {self.limits.max_upload_size} bytes")
        current.sha256.update(data)
        view = memoryview(data)
        while view:
            view = view[current.handle.write(view) :]
        metrics.STORED_BYTES.inc(len(data))

    def _end(self) -> None:
        current = self._open
        assert current is not None
        off_loop(os.fsync, current.handle.fileno())
        current.handle.close()
        self._open = None
        self.files.append(
            {
                "path": f"files/{len(self.files)}",
                "field": current.name,
                "name": current.filename,
                "content_type": current.content_type,
                "size": current.size,
                "sha256": current.sha256.hexdigest(),
            }
        )

    def _close(self) -> None:
        if self._open is not None:
            self._open.handle.close()
            self._open = None

    def _manifest(self, form: UploadForm) -> dict[str, Any]:
        try:
            purpose = form.purpose(self.purposes)
            metadata = form.metadata()
        except FieldError as exc:
            raise MalformedForm(str(exc)) from None
        return {
            "id": self.upload_id,
            "tenant": self.tenant,
            "purpose": purpose,
            "metadata": metadata,
            "files": self.files,
            "size": self.total,
            "created": time.time(),
        }
