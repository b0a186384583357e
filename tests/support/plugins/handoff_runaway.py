"""Processors that never end well, and one that takes its time: the worker must cope."""

import time
from typing import Any

from handoff.processors import Job

CHUNK = 16 * 1024 * 1024
#: Seconds a ``slow`` job takes: long enough to kill its worker in the middle of it.
SLOW_SECONDS = 4.0


def allocate_forever(job: Job) -> dict[str, Any]:
    """Hold ever more memory, touching every page so that it is really used."""
    held = []
    while True:
        held.append(bytearray(CHUNK))
        held[-1][::4096] = b"\x01" * (CHUNK // 4096)


def sleep_forever(job: Job) -> dict[str, Any]:
    """Never return."""
    while True:
        time.sleep(3600)


def sleep_a_while(job: Job) -> dict[str, Any]:
    """Succeed after :data:`SLOW_SECONDS`, for tests that break a worker mid-job."""
    time.sleep(SLOW_SECONDS)
    return {"slept": SLOW_SECONDS}
