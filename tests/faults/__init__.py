"""Fault tests: the real stack under bad input, hostile clients and failing peers.

The checks below are the three things a refused upload must get right:
the answer the client sees, the job queue (nothing enqueued) and the upload
store on disk afterwards (nothing left behind).
"""

import json
from pathlib import Path
from typing import Any

import redis

from tests.geo_service.store import disk
from tests.support.polling import eventually
from tests.support.processes import Processes
from tests.support.stacks import Stack

NO_WORKER = ("redis", "geo", "api")
# The geo service removes a refused upload when its own read of the body
# fails, which can come a moment after the API has answered the client.
CLEANUP_SECONDS = 10.0


def private_stack(processes: Processes, overrides: dict[str, str],
                  components: tuple[str, ...] = NO_WORKER) -> Stack:
    """A stack of a test module's own, in ``processes`` (``module_processes``).

    Without a worker nothing consumes the queue, so its length shows
    exactly what was enqueued.
    """
    return processes.stack("faults-stack", overrides, components)


def nothing_kept(stack: Stack) -> None:
    """Nothing enqueued, nothing left in the store: what every refused upload must leave."""
    assert queue_length(stack) == 0
    assert folders_left(stack) == []


def queue_length(stack: Stack) -> int:
    """Messages waiting in the stack's Dramatiq queue (a Redis list)."""
    client = redis.Redis.from_url(stack.env["HANDOFF_REDIS_URL"], socket_timeout=5)
    try:
        return client.llen(f"dramatiq:{stack.env['HANDOFF_QUEUE']}")
    finally:
        client.close()


def upload_folders(stack: Stack) -> list[str]:
    """Upload folders in the store, without the lock and trash folders."""
    return sorted(p.name for p in stack.uploads.iterdir() if p.name not in disk.internal())


def folders_left(stack: Stack, keep: frozenset[str] = frozenset()) -> list[str]:
    """Upload folders other than ``keep`` once the geo side has had time to clean up.

    Returns as soon as none is left, so a passing run does not wait.
    """
    def left() -> list[str]:
        return [name for name in upload_folders(stack) if name not in keep]

    eventually(lambda: not left(), CLEANUP_SECONDS)
    return left()


def log_records(stack: Stack, name: str, start: int = 0) -> list[dict[str, Any]]:
    """The JSON lines of a component's log from character ``start`` on."""
    records = []
    for line in stack.log(name)[start:].splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def refusal(stack: Stack, upload_id: str) -> dict[str, Any]:
    """The API's single "upload refused" record for ``upload_id``."""
    found = [r for r in log_records(stack, "api")
             if r.get("message") == "upload refused" and r.get("upload_id") == upload_id]
    assert len(found) == 1, f"expected one refusal logged for {upload_id}, found {found}"
    return found[0]


def geo_posts(stack: Stack, upload_id: str) -> list[str]:
    """The geo service's access-log lines for uploads of ``upload_id``: bytes it was sent."""
    return [r["request"] for r in log_records(stack, "geo")
            if str(r.get("request", "")).startswith(f"POST /uploads/{upload_id} ")]


def tree(path: Path) -> set[str]:
    """Every path below ``path``, relative to it."""
    return {str(p.relative_to(path)) for p in path.rglob("*")}
