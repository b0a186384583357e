"""Processors that never end well: the worker's limits must end them instead."""

import time
from typing import Any

from handoff.processors import Job

CHUNK = 16 * 1024 * 1024


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
