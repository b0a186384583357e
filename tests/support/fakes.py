"""The upload routes' two dependencies, in memory: a geo service client and a job queue.

They stand in for :class:`api_service.geo.GeoClient` and
:class:`handoff.queue.JobQueue` in ``app.extensions["handoff"]``, so the
routes run under Flask's test client with no server at all. The fake geo
service parses what it is sent with Werkzeug's decoder, not handoff's, and
hashes the files as they pass, so the relay's check still holds it to the
bytes it really received.
"""

import hashlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from api_service.geo import GeoError
from handoff.queue import QueueUnavailable


class FakeGeo:
    """Keeps uploads as geo statuses; ``failure`` is raised by every call while it is set."""

    def __init__(self, purposes: Iterable[str] = ("raw",)) -> None:
        self.known_purposes = set(purposes)
        self.name: str | None = None
        self.uploads: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.failure: Exception | None = None
        # Called with nothing when the first chunk of a body arrives.
        self.on_first_chunk: Callable[[], None] = lambda: None

    def purposes(self) -> set[str]:
        self._fail()
        return self.known_purposes

    def upload(self, upload_id: str, tenant: str, content_type: str, body: Iterable[bytes],
               length: int | None) -> dict[str, Any]:
        self._fail()
        files = _stored_files(content_type, self._watched(body))
        manifest = {"id": upload_id, "files": files, "created": time.time(),
                    "size": sum(f["size"] for f in files), "tenant": tenant}
        self.uploads[upload_id] = {"id": upload_id, "state": "complete", "tenant": tenant,
                                   "cancelled": False, "manifest": manifest}
        return manifest

    def status(self, upload_id: str) -> dict[str, Any] | None:
        self._fail()
        return self.uploads.get(upload_id)

    def record_job(self, upload_id: str, job: dict[str, Any]) -> None:
        self._fail()
        self.uploads[upload_id].update(state="queued", job=job)

    def delete(self, upload_id: str) -> bool:
        self.deleted.append(upload_id)
        self.uploads.pop(upload_id, None)
        return True

    def cancel(self, upload_id: str) -> bool:
        self._fail()
        status = self.uploads.get(upload_id)
        if status is not None and status["state"] == "claimed":
            raise GeoError(409, "a worker is processing the upload")
        return self.uploads.pop(upload_id, None) is not None

    def ready(self) -> str | None:
        return str(self.failure) if self.failure else None

    def capacity(self, timeout: tuple[float, float]) -> dict[str, Any]:
        self._fail()
        return {"replica": self.name, "free_bytes": 1 << 40, "in_flight": 0, "ready": True}

    def _fail(self) -> None:
        if self.failure is not None:
            raise self.failure

    def _watched(self, body: Iterable[bytes]) -> Iterator[bytes]:
        for index, chunk in enumerate(body):
            if index == 0:
                self.on_first_chunk()
            yield chunk


@dataclass
class _StoredFile:
    name: str
    size: int = 0
    sha256: Any = field(default_factory=hashlib.sha256)


def _stored_files(content_type: str, body: Iterable[bytes]) -> list[dict[str, Any]]:
    """Name, size and sha256 of every file part, hashed chunk by chunk."""
    boundary = parse_options_header(content_type)[1]["boundary"].encode()
    decoder = MultipartDecoder(boundary)
    files: list[_StoredFile] = []
    current: _StoredFile | None = None
    for chunk in itertools.chain(body, [None]):
        decoder.receive_data(chunk)
        event = decoder.next_event()
        while not isinstance(event, NeedData | Epilogue):
            if isinstance(event, File):
                current = _StoredFile(event.filename)
                files.append(current)
            elif isinstance(event, Field):
                current = None
            elif isinstance(event, Data) and current is not None:
                current.size += len(event.data)
                current.sha256.update(event.data)
            event = decoder.next_event()
    return [{"name": f.name, "size": f.size, "sha256": f.sha256.hexdigest()} for f in files]


class FakeQueue:
    """Takes every job and remembers it, or refuses them all while ``down``."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, str, dict[str, Any]]] = []
        # The replica each job was enqueued for (None: the queue itself).
        self.replicas: list[str | None] = []
        self.down = False

    def enqueue(self, upload_id: str, purpose: str, metadata: dict[str, Any],
                replica: str | None = None) -> str:
        if self.down:
            raise QueueUnavailable("Connection refused")
        self.jobs.append((upload_id, purpose, metadata))
        self.replicas.append(replica)
        return f"m-{len(self.jobs)}"

    def ready(self) -> str | None:
        return "Connection refused" if self.down else None


class FakeRecords:
    """Which replica holds each upload, as :class:`api_service.records.ReplicaRecords` keeps it."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def remember(self, upload_id: str, replica: str) -> None:
        self.names[upload_id] = replica

    def lookup(self, upload_id: str) -> str | None:
        return self.names.get(upload_id)
