"""The flock :class:`~geo_service.store.base.Locker`: an upload's exclusive advisory lock.

filelock's ``FileLock`` is an OS-level ``flock``: it dies with its holder,
so a killed writer or worker never blocks an upload forever. Lock files
live in a folder of their own beside the uploads rather than inside one,
because filelock recreates missing parent folders and would resurrect a
deleted upload.

A writer whose client vanished without a word still holds the lock until
it notices. tusd's answer is a request to stop: who wants the lock says so
in a stop file beside it, the holder polls for that file, keeps what it
durably wrote and lets go (see :func:`held` with ``stop``).
"""

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from geo_service.store.base import Busy, Locker, LockFile, check_id
from handoff.ids import is_upload_id

POLL_INTERVAL = 0.05
_LOCK_SUFFIX = ".lock"
_STOP_SUFFIX = ".stop"


class FlockLocker(Locker):
    """Lock files ``<folder>/<id>.lock``, and ``<id>.stop`` for a request to let go."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def lock(self, upload_id: str, timeout: float) -> AbstractContextManager[None]:
        return held(self.lock_path(upload_id), timeout)

    def take_over(self, upload_id: str, timeout: float) -> AbstractContextManager[None]:
        return held(self.lock_path(upload_id), timeout, stop=self._stop_path(upload_id))

    def stop_requested(self, upload_id: str) -> bool:
        return self._stop_path(upload_id).exists()

    def ensure_held(self, upload_id: str) -> None:
        """Nothing to check: a flock lasts exactly as long as the process that holds it."""

    def lock_files(self) -> Iterator[LockFile]:
        """The lock files named after an upload id, with their mtimes; nothing else."""
        with os.scandir(self.folder) as entries:
            for entry in entries:
                upload_id = entry.name.removesuffix(_LOCK_SUFFIX)
                if upload_id == entry.name or not is_upload_id(upload_id):
                    continue
                try:
                    if entry.is_file(follow_symlinks=False):
                        yield LockFile(upload_id, entry.stat(follow_symlinks=False).st_mtime)
                except FileNotFoundError:
                    continue

    def remove_lock_file(self, upload_id: str) -> None:
        """Delete the lock file of an upload that is gone; the caller holds the lock.

        Lock files outlive their uploads (waiters must share one inode), so
        without this the folder would grow by one file per upload for ever.
        """
        self.lock_path(upload_id).unlink(missing_ok=True)

    def lock_path(self, upload_id: str) -> Path:
        return self.folder / f"{check_id(upload_id)}{_LOCK_SUFFIX}"

    def _stop_path(self, upload_id: str) -> Path:
        return self.folder / f"{check_id(upload_id)}{_STOP_SUFFIX}"


@contextmanager
def held(lock_path: Path, timeout: float = 0, stop: Path | None = None) -> Iterator[None]:
    """Hold the lock at ``lock_path``; raise :class:`Busy` after ``timeout`` seconds.

    ``timeout=0`` tries once, which is what the sweeper and DELETE want: an
    upload someone is working on is simply not theirs to touch right now.
    With ``stop``, the holder is asked to let go while this waits: the stop
    file is created at every try (so a third party that took the lock in
    between is asked too) and removed once the lock is ours or the wait is
    over, so it never asks the next holder to stop.
    """
    lock = FileLock(
        lock_path, thread_local=False, fallback_to_soft=False, preserve_lock_file=True
    )
    try:
        if stop is None:
            lock.acquire(timeout=timeout, poll_interval=POLL_INTERVAL)
        else:
            _take_over(lock, timeout, stop)
    except Timeout:
        raise Busy(str(lock_path)) from None
    try:
        yield
    finally:
        lock.release()


def _take_over(lock: FileLock, timeout: float, stop: Path) -> None:
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                lock.acquire(timeout=0)
                return
            except Timeout:
                if time.monotonic() >= deadline:
                    raise
            stop.touch()
            time.sleep(POLL_INTERVAL)
    finally:
        stop.unlink(missing_ok=True)
