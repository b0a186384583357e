"""Letting go of an upload's lock when asked: the one check every writer makes.

A writer holding an upload's lock is asked to let go in two ways, both
read through :meth:`UploadStore.stop_reason`: its tenant cancelled the
upload (stop, and the upload is removed), or another request waits for the
lock (stop, and what is durable is kept). The writer calls :func:`check`
between chunks; :class:`StopWatch` also ends a read its silent sender
would keep blocked.
"""

import threading
from collections.abc import Callable

from geo_service.store import StopReason, UploadStore

# How often a watch looks for a request to stop or a cancel.
WATCH_INTERVAL = 0.1


class Cancelled(Exception):
    """The upload's tenant cancelled it while it was being received."""


class Stopped(Exception):
    """Another request asked for the upload's lock; what was written is kept."""


def raise_for(reason: StopReason | None, upload_id: str) -> None:
    """Raise :class:`Cancelled` or :class:`Stopped` for ``reason``; nothing for None."""
    if reason is StopReason.CANCELLED:
        raise Cancelled(f"upload {upload_id} was cancelled")
    if reason is StopReason.WANTED:
        raise Stopped(f"another request took over upload {upload_id}")


def check(store: UploadStore, upload_id: str) -> None:
    """Raise if the lock holder of ``upload_id`` was asked to let go."""
    raise_for(store.stop_reason(upload_id), upload_id)


class StopWatch:
    """Looks for a request to stop while a body streams in, so a silent sender cannot stall it.

    A writer blocked reading from a peer that sends nothing would only
    notice a stop request at its read timeout. The watch polls every
    :data:`WATCH_INTERVAL` and, on a request, calls ``on_stop`` (which ends
    the blocked read, see :mod:`geo_service.http.tus`); :meth:`check` then
    raises.
    """

    def __init__(self, store: UploadStore, upload_id: str, on_stop: Callable[[], None]) -> None:
        self._store = store
        self._upload_id = upload_id
        self._on_stop = on_stop
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self.reason: StopReason | None = None

    def __enter__(self) -> "StopWatch":
        self._look()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def check(self) -> None:
        """Raise :class:`Cancelled` or :class:`Stopped` if the writer was asked to let go."""
        raise_for(self.reason, self._upload_id)

    def _watch(self) -> None:
        while self.reason is None and not self._done.wait(WATCH_INTERVAL):
            if self._look():
                self._on_stop()

    def _look(self) -> bool:
        self.reason = self._store.stop_reason(self._upload_id)
        return self.reason is not None
