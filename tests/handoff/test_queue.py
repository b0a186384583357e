"""Which queue a job goes to: the replica's own, or the one queue of a shared store."""

from typing import Any

import pytest

from handoff.config import Settings, parse_store_url
from handoff.queue import ACTOR, JobQueue


def _sent_to(settings: Settings, replica: str | None) -> str:
    """The queue ``JobQueue.enqueue`` hands its message to (nothing reaches a broker)."""
    queue = JobQueue(settings)
    sent: list[str] = []

    def send(queue_name: str, actor_name: str, args: tuple[Any, ...]) -> str:
        assert actor_name == ACTOR
        sent.append(queue_name)
        return "m-1"

    queue.send = send  # type: ignore[method-assign]
    queue.enqueue("0b6f2c1e-5d7a-4c39-9a43-7d4c2f0e8a11", "raw", {}, replica=replica)
    return sent[0]


@pytest.mark.parametrize(("replica", "expected"), [("geo-1", "jobs.geo-1"), (None, "jobs")])
def test_with_a_store_of_its_own_a_job_goes_to_its_replica_s_queue(
        replica: str | None, expected: str) -> None:
    assert _sent_to(Settings(queue="jobs"), replica) == expected


@pytest.mark.parametrize("replica", ["geo-1", None])
def test_with_a_shared_store_every_job_goes_to_the_one_queue(replica: str | None) -> None:
    settings = Settings(queue="jobs", store_url=parse_store_url("s3://uploads/eu"))
    assert _sent_to(settings, replica) == "jobs"


def test_a_shared_store_replica_s_own_queue_is_the_one_queue() -> None:
    settings = Settings(queue="jobs", replica="geo-2", store_url=parse_store_url("az://uploads"))
    assert _sent_to(settings, None) == "jobs"
