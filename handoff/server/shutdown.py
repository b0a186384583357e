"""Stopping with uploads in flight: they finish within the grace, or are told why they stop.

On SIGTERM gunicorn stops accepting and gives the requests in flight
``graceful_timeout``; then it kills what is left, which a client sees as a
reset and cannot tell from a crash. A little before that deadline the
bodies of the uploads still arriving are cut instead: their reads end,
:func:`read_chunk <api_service.relay.read_chunk>` sees :func:`cut` and the
upload ends with a 503 problem and ``Retry-After`` (a tus upload keeps what
arrived, for a resume), with time left to send it.
"""

import contextlib
import socket
import threading
import weakref
from collections.abc import Callable

#: Seconds before gunicorn's deadline at which uploads are cut: room to answer them.
ANSWER_MARGIN = 2.0

_bodies: "weakref.WeakSet[socket.socket]" = weakref.WeakSet()
_cut = threading.Event()


def track(sock: socket.socket) -> None:
    """Count ``sock`` among the connections whose bodies a shutdown cuts."""
    _bodies.add(sock)


def cut() -> bool:
    """Whether the bodies were cut: a read that ended is then the shutdown's doing."""
    return _cut.is_set()


def cut_bodies() -> None:
    """End every tracked body's reads now; the answers can still be written."""
    _cut.set()
    for sock in list(_bodies):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)


def cut_delay(graceful_timeout: float) -> float:
    """Seconds after SIGTERM at which the bodies are cut."""
    return max(0.0, graceful_timeout - ANSWER_MARGIN)


def later(delay: float, action: Callable[[], None]) -> None:
    """Run ``action`` after ``delay`` without blocking; safe inside a signal handler.

    An evented worker gets a greenlet (as gunicorn's own handlers do), a
    threaded one a daemon timer.
    """
    try:
        from gevent import monkey, spawn_later
    except ImportError:
        pass
    else:
        if monkey.is_module_patched("socket"):
            spawn_later(delay, action)
            return
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()
