"""Writes one incoming multipart stream into the store, each byte once.

File bytes go straight into their final files while being hashed; nothing
is spooled. Only when every file is fsynced is the manifest sealed, so a
reader that finds a manifest finds complete files. A cancel is looked for
after every chunk and once more before sealing: the writer holds the lock,
so it is the one that stops.
"""

import os
import time
from collections.abc import Iterable
from typing import Any, BinaryIO

from geo_service.store import UploadStore
from handoff.auth import ANONYMOUS
from handoff.form import FieldError, UploadLimits
from handoff.form_consumer import FormConsumer
from handoff.multipart import FileStart, MalformedForm
from handoff.server import metrics
from handoff.server.blocking import off_loop


class Cancelled(Exception):
    """The upload's tenant cancelled it while it was being received."""


class _StoreSink:
    """Each file straight into ``files/<n>``, unbuffered, and fsynced at its end."""

    def __init__(self, store: UploadStore, upload_id: str) -> None:
        self._store = store
        self._upload_id = upload_id
        self._handle: BinaryIO | None = None

    def start(self, index: int, event: FileStart) -> None:
        path = self._store.file_path(self._upload_id, index)
        self._handle = open(path, "xb", buffering=0)  # noqa: SIM115 - closed in end/close

    def write(self, data: bytes | memoryview) -> None:
        assert self._handle is not None
        view = memoryview(data)
        while view:
            view = view[self._handle.write(view) :]
        metrics.STORED_BYTES.inc(len(data))

    def end(self) -> None:
        assert self._handle is not None
        off_loop(os.fsync, self._handle.fileno())
        self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class Receiver:
    """Consumes the body of ``POST /uploads/<id>`` for one upload."""

    def __init__(self, store: UploadStore, upload_id: str, purposes: frozenset[str] | set[str],
                 limits: UploadLimits, tenant: str = ANONYMOUS):
        self.store = store
        self.upload_id = upload_id
        self.tenant = tenant
        self.purposes = purposes
        self.limits = limits

    def receive(self, chunks: Iterable[bytes], boundary: bytes) -> dict[str, Any]:
        """Write every file in ``chunks``, then seal and return the manifest."""
        sink = _StoreSink(self.store, self.upload_id)
        consumer = FormConsumer(boundary, self.limits, sink)
        try:
            for chunk in chunks:
                consumer.feed(chunk)
                self._check_cancel()
            consumer.feed(None)
        finally:
            sink.close()
        if not consumer.files:
            raise MalformedForm("the upload contains no file part")
        manifest = self._manifest(consumer)
        self._check_cancel()
        self.store.seal(self.upload_id, manifest)
        return manifest

    def _check_cancel(self) -> None:
        if self.store.cancelled(self.upload_id):
            raise Cancelled(f"upload {self.upload_id} was cancelled")

    def _manifest(self, consumer: FormConsumer) -> dict[str, Any]:
        try:
            purpose = consumer.form.purpose(self.purposes)
            metadata = consumer.form.metadata()
        except FieldError as exc:
            raise MalformedForm(str(exc)) from None
        files = [{"path": f"files/{f.index}", "field": f.field, "name": f.name,
                  "content_type": f.content_type, "size": f.size, "sha256": f.sha256}
                 for f in consumer.files]
        return {
            "id": self.upload_id,
            "tenant": self.tenant,
            "purpose": purpose,
            "metadata": metadata,
            "files": files,
            "size": sum(f.size for f in consumer.files),
            "created": time.time(),
        }
