"""System calls that may block for long, kept off an evented worker's loop.

Under gunicorn's gevent worker every connection of a process shares one
thread. ``fsync`` on a busy disk can take a second or more, and while it
runs that thread answers nobody, ``/healthz`` included. :func:`off_loop`
runs such a call on gevent's pool of real threads when the process is
monkey-patched, and simply calls it otherwise (gthread workers, the
Dramatiq worker, the sweeper, tests).
"""

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def off_loop(call: Callable[..., T], *args: object) -> T:
    """``call(*args)``, on a real thread if this process runs an event loop."""
    if not _evented():
        return call(*args)
    import gevent

    return gevent.get_hub().threadpool.apply(call, args)


def _evented() -> bool:
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("socket"))
