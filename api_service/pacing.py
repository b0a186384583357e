"""Slow clients: the minimum sustained rate a client must keep up.

A client that sends one byte every few seconds never trips a silence
timeout, yet holds its connection, a geo-service connection and a partial
upload for as long as it likes. Like Apache's mod_reqtimeout ``MinRate``,
the API gives every client ``HANDOFF_CLIENT_MIN_RATE`` bytes per second,
averaged over ``HANDOFF_CLIENT_RATE_WINDOW``, and cuts those below it.

Silence is the client timeout's business, not the rate's: a single wait of
a whole window or more (a client that paused, for less than
``HANDOFF_CLIENT_TIMEOUT``, and resumed) starts a new window instead of
counting as a window with nothing in it. Otherwise every pause longer than
the window would be cut as "too slow", and the timeout would mean nothing.

Only time spent waiting for the client counts: while the geo service is
slow to take bytes, the client's own bytes wait in the socket buffer, and
that is not the client's fault. So a fast client behind a slow disk is
never cut, and a trickler is cut after one window of waiting.
"""

import time
from collections.abc import Callable

from handoff.server.request_body import Readable
from handoff.units import format_size

Clock = Callable[[], float]


class TooSlow(TimeoutError):
    """The client sent less than the minimum rate over a whole window."""


class MinimumRate:
    """Bytes received against time waited, checked once per window of waiting."""

    def __init__(self, rate: int, window: float) -> None:
        self.rate = rate
        self.window = window
        self._waited = 0.0
        self._received = 0

    def record(self, waited: float, received: int) -> None:
        """Count one read; raise :class:`TooSlow` when a full window fell short."""
        if waited >= self.window:
            self._waited = 0.0
            self._received = 0
            return
        self._waited += waited
        self._received += received
        if self._waited < self.window:
            return
        if self._received < self.rate * self._waited:
            raise TooSlow(f"the client sent {self._received} bytes in {self._waited:.0f} s of "
                          f"waiting, below the minimum of {format_size(self.rate)}/s")
        self._waited = 0.0
        self._received = 0


class PacedBody:
    """A request body whose reads are held to a :class:`MinimumRate`.

    After each read the greenlet (or thread) yields, so one fast upload
    cannot keep an evented worker from answering its other connections.
    """

    def __init__(self, body: Readable, rate: MinimumRate,
                 clock: Clock = time.monotonic) -> None:
        self._body = body
        self._rate = rate
        self._clock = clock

    def read(self, size: int) -> bytes:
        started = self._clock()
        data = self._body.read(size)
        self._rate.record(self._clock() - started, len(data))
        time.sleep(0)
        return data
