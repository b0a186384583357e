"""The reconciler against a real valkey: held messages stay, lost ones come back, then fail."""

import json
import subprocess
import sys

import pytest
import redis

from geo_service.store import FileStore

NO_WORKER = ("redis", "geo", "api")
MESSAGES = "dramatiq:geoprocessing.msgs"


def _sweep_once(stack) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "handoff_gc", "--once"], env=stack.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def _accepted(stack) -> str:
    response = stack.upload([("a.bin", b"lost and found")])
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _job(stack, upload_id: str) -> dict:
    job = FileStore(stack.uploads).job(upload_id)
    assert job is not None
    return job


@pytest.fixture
def queue(make_stack):
    """A stack without a worker whose queue the sweeper reconciles at every run."""
    stack = make_stack({"HANDOFF_REQUEUE_AFTER": "0s", "HANDOFF_MAX_REQUEUES": "2"},
                       components=NO_WORKER)
    return stack, redis.Redis(port=stack.ports["redis"])


def test_a_message_the_broker_holds_is_not_requeued(queue):
    stack, client = queue
    upload_id = _accepted(stack)
    before = _job(stack, upload_id)

    _sweep_once(stack)

    assert _job(stack, upload_id) == before
    assert client.hlen(MESSAGES) == 1
    assert "requeued" not in stack.log("gc")


def test_a_lost_message_is_requeued_once_and_counted(queue):
    stack, client = queue
    upload_id = _accepted(stack)
    lost = _job(stack, upload_id)["message_id"]
    client.flushall()

    first = _sweep_once(stack)
    again = _sweep_once(stack)  # the new message is held: no duplicate

    job = _job(stack, upload_id)
    assert job["requeues"] == 1
    assert job["message_id"] != lost
    bodies = [json.loads(body) for body in client.hvals(MESSAGES)]
    assert [body["message_id"] for body in bodies] == [job["message_id"]]
    body = bodies[0]
    assert body["actor_name"] == "process_upload"
    assert body["args"] == [upload_id, "raw", {}]
    assert f"requeued {upload_id}" in first.stderr + first.stdout
    assert "requeued" not in again.stderr + again.stdout
    assert stack.status(upload_id)["status"] == "queued"


def test_after_max_requeues_the_upload_fails_with_the_reason(queue):
    stack, client = queue
    upload_id = _accepted(stack)
    for _ in range(3):  # two requeues, then the bound
        client.flushall()
        _sweep_once(stack)

    status = stack.status(upload_id)
    assert status["status"] == "failed"
    assert "lost this upload's message 3 times" in status["error"]
    assert _job(stack, upload_id)["requeues"] == 2
    assert client.hlen(MESSAGES) == 0
