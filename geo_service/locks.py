"""The one lock helper: an upload's exclusive advisory lock.

filelock's ``FileLock`` is an OS-level ``flock``: it dies with its holder,
so a killed writer or worker never blocks an upload forever. Lock files
live in ``<root>/.locks/`` rather than inside the upload, because filelock
recreates missing parent folders and would resurrect a deleted upload.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


class Busy(Exception):
    """Someone else holds the upload's lock."""


@contextmanager
def held(lock_path: Path, timeout: float = 0) -> Iterator[None]:
    """Hold the lock at ``lock_path``; raise :class:`Busy` after ``timeout`` seconds.

    ``timeout=0`` tries once, which is what the sweeper and DELETE want: an
    upload someone is working on is simply not theirs to touch right now.
    """
    lock = FileLock(
        lock_path, thread_local=False, fallback_to_soft=False, preserve_lock_file=True
    )
    try:
        lock.acquire(timeout=timeout, poll_interval=0.05)
    except Timeout:
        raise Busy(str(lock_path)) from None
    try:
        yield
    finally:
        lock.release()
