"""Writes one incoming multipart stream into the store, each byte once.

File bytes go straight into their final files while being hashed; nothing
is spooled. Only when every file is committed is the manifest sealed, so a
reader that finds a manifest finds complete files. A request to let go (a
cancel) is looked for after every chunk and once more before sealing: the
writer holds the lock, so it is the one that stops.
"""

import time
from collections.abc import Iterable
from typing import Any

from geo_service.intake import stop
from geo_service.store import FileWriter, UploadStore
from handoff.auth import ANONYMOUS
from handoff.form import FieldError, UploadLimits
from handoff.form_consumer import FormConsumer
from handoff.multipart import FileStart, MalformedForm
from handoff.server import metrics


class _StoreSink:
    """Each file straight into the store's writer for it, committed at its end."""

    def __init__(self, store: UploadStore, upload_id: str) -> None:
        self._store = store
        self._upload_id = upload_id
        self._writer: FileWriter | None = None

    def start(self, index: int, event: FileStart) -> None:
        self._writer = self._store.open_writer(self._upload_id, index)

    def write(self, data: bytes | memoryview) -> None:
        assert self._writer is not None
        self._writer.write(data)
        metrics.STORED_BYTES.inc(len(data))

    def end(self) -> None:
        assert self._writer is not None
        self._writer.commit()
        self._writer = None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


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
                stop.check(self.store, self.upload_id)
            consumer.feed(None)
        finally:
            sink.close()
        if not consumer.files:
            raise MalformedForm("the upload contains no file part")
        manifest = self._manifest(consumer)
        stop.check(self.store, self.upload_id)
        self.store.seal(self.upload_id, manifest)
        return manifest

    def _manifest(self, consumer: FormConsumer) -> dict[str, Any]:
        try:
            purpose = consumer.form.purpose(self.purposes)
            metadata = consumer.form.metadata()
        except FieldError as exc:
            raise MalformedForm(str(exc)) from None
        files = [{"field": f.field, "name": f.name,
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
