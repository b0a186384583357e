"""The one lock helper: an upload's exclusive advisory lock.

filelock's ``FileLock`` is an OS-level ``flock``: it dies with its holder,
so a killed writer or worker never blocks an upload forever. Lock files
live in ``<root>/.locks/`` rather than inside the upload, because filelock
recreates missing parent folders and would resurrect a deleted upload.

A writer whose client vanished without a word still holds the lock until
it notices. tusd's answer is a request to stop: who wants the lock says so
in a ``.stop`` file beside it, the holder polls for that file, keeps what
it durably wrote and lets go (see :func:`held` with ``stop``).
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


class Busy(Exception):
    """Someone else holds the upload's lock."""


POLL_INTERVAL = 0.05


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
