"""Waiting for something another process does, without timing assertions."""

import time
from collections.abc import Callable


def eventually(predicate: Callable[[], object], timeout: float = 20.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last answer.

    A bound, not a measurement: a passing run returns as soon as the other
    process has done its part.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())
