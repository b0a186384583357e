"""Completion hooks on real processes: the application's own Dramatiq worker, a real receiver.

The application's worker is a second ``dramatiq`` process on the same
valkey running tests/support/app_actor.py, which imports nothing from
handoff. "Exactly once" is checked when the broker holds no message of
either side any more, so nothing can still be on its way.
"""

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from devstack import processes
from handoff.config import load_settings
from handoff.queue import JobQueue
from tests.support.polling import eventually
from tests.support.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
APP_ACTOR = "upload_finished"
APP_QUEUE = "app-events"
SECRET = "whsec-integration"
WEBHOOK_QUEUE = "handoff-webhooks"
FAST_RETRIES = {"HANDOFF_WEBHOOK_MIN_BACKOFF": "100ms", "HANDOFF_WEBHOOK_MAX_BACKOFF": "300ms",
                "HANDOFF_WEBHOOK_MAX_RETRIES": "3", "HANDOFF_WEBHOOK_TIMEOUT": "5s"}


def _app_environment(events: Path) -> dict[str, str]:
    return {"HANDOFF_ON_FINISH_ACTOR": APP_ACTOR, "HANDOFF_ON_FINISH_QUEUE": APP_QUEUE,
            "APP_ACTOR": APP_ACTOR, "APP_QUEUE": APP_QUEUE, "APP_EVENTS_FILE": str(events)}


def _start_app_worker(stack: Any) -> None:
    """The application's worker: its own dramatiq process, its own module, the same valkey."""
    stack.env["APP_BROKER_URL"] = stack.env["HANDOFF_REDIS_URL"]
    stack.start("app-worker", [str(processes.BIN / "dramatiq"), "tests.support.app_actor",
                               "--processes", "1", "--threads", "1", "--path", str(ROOT),
                               "--queues", APP_QUEUE])


def _received(events: Path) -> list[dict[str, Any]]:
    if not events.exists():
        return []
    return [json.loads(line) for line in events.read_text().splitlines()]


def _held(client: redis.Redis, *queues: str) -> int:
    """Messages the broker still has for these queues: waiting, delayed or in flight."""
    return sum(int(client.hlen(f"dramatiq:{name}.msgs")) for queue in queues
               for name in (queue, f"{queue}.DQ"))


def _accepted(response: Any) -> str:
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.fixture
def app_stack(make_stack: Callable[..., Any], tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    """A stack that announces to the application's actor, and that application's worker."""
    events = tmp_path / "events.jsonl"
    stack = make_stack(_app_environment(events))
    _start_app_worker(stack)
    yield stack, events


def test_the_application_actor_hears_once_of_each_finished_upload(app_stack) -> None:
    stack, events = app_stack
    client = redis.Redis(port=stack.ports["redis"])
    done = _accepted(stack.upload([("a.bin", b"announce me")], metadata='{"project": "p1"}'))
    failed = _accepted(stack.upload([("roads.zip", b"not a zip")], purpose="shapefile"))
    assert stack.wait_for(done)["status"] == "done"
    assert stack.wait_for(failed)["status"] == "failed"
    assert eventually(lambda: len(_received(events)) >= 2, timeout=60)

    # A redelivered job for the finished upload: the worker does nothing, announces nothing.
    JobQueue(load_settings(stack.env)).enqueue(done, "raw", {"project": "p1"})
    assert eventually(lambda: stack.log("worker").count("job already finished") == 1, timeout=60)
    assert eventually(lambda: _held(client, "geoprocessing", APP_QUEUE) == 0, timeout=60)

    received = _received(events)
    assert sorted(line["event"]["id"] for line in received) == sorted([done, failed])
    assert all(line["handoff_modules"] == [] for line in received)
    by_id = {line["event"]["id"]: line["event"] for line in received}
    status = stack.status(done)
    assert by_id[done] == {"event": "upload.finished", "id": done, "tenant": "anonymous",
                           "purpose": "raw", "metadata": {"project": "p1"}, "status": "done",
                           "result": status["result"], "error": None,
                           "finished_at": status["finished_at"]}
    assert by_id[failed]["status"] == "failed"
    assert by_id[failed]["purpose"] == "shapefile"
    assert by_id[failed]["result"] is None
    assert by_id[failed]["error"] == stack.status(failed)["error"]
    assert not list(stack.uploads.glob("*/announce.json"))


def test_a_failure_the_sweeper_records_is_announced_too(make_stack, tmp_path: Path) -> None:
    """The queue lost the job's message and the sweeper gave up: the application hears of it."""
    events = tmp_path / "events.jsonl"
    stack = make_stack({**_app_environment(events), "HANDOFF_REQUEUE_AFTER": "0s",
                        "HANDOFF_MAX_REQUEUES": "0"}, components=("redis", "geo", "api"))
    upload_id = _accepted(stack.upload([("a.bin", b"lost")]))
    client = redis.Redis(port=stack.ports["redis"])
    client.flushall()

    sweep = subprocess.run([sys.executable, "-m", "handoff_gc", "--once"], env=stack.env,
                           capture_output=True, text=True, timeout=60)
    assert sweep.returncode == 0, sweep.stderr
    _start_app_worker(stack)

    assert eventually(lambda: _held(client, APP_QUEUE) == 0 and _received(events), timeout=60)
    [line] = _received(events)
    assert line["event"]["id"] == upload_id
    assert line["event"]["status"] == "failed"
    assert "lost this upload's message" in line["event"]["error"]


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    """A loopback webhook receiver answering ``request.param`` in turn."""
    with Receiver(SECRET, request.param).running() as running:
        yield running


def _webhook_stack(make_stack: Callable[..., Any], receiver: Receiver) -> Any:
    return make_stack({"HANDOFF_WEBHOOK_URL": receiver.url, "HANDOFF_WEBHOOK_SECRET": SECRET,
                       **FAST_RETRIES})


@pytest.mark.parametrize("receiver", [[500, 200]], indirect=True)
def test_a_webhook_answered_500_is_retried_signed_with_the_same_key(make_stack,
                                                                    receiver: Receiver) -> None:
    stack = _webhook_stack(make_stack, receiver)
    client = redis.Redis(port=stack.ports["redis"])
    upload_id = _accepted(stack.upload([("a.bin", b"hook me")]))
    assert stack.wait_for(upload_id)["status"] == "done"

    assert eventually(lambda: receiver.count() >= 2 and _held(client, WEBHOOK_QUEUE) == 0,
                      timeout=60)

    assert receiver.count() == 2
    first, second = receiver.deliveries
    assert first.signed and second.signed
    for delivery in (first, second):
        assert delivery.headers["Idempotency-Key"] == upload_id
        assert delivery.headers["Handoff-Event"] == "upload.finished"
        assert delivery.headers["Content-Type"] == "application/json"
    assert first.body == second.body
    event = json.loads(second.body)
    assert (event["id"], event["status"]) == (upload_id, "done")
    assert event["result"] == stack.status(upload_id)["result"]
    log = stack.log("worker")
    assert "webhook not delivered, will retry: the receiver answered 500" in log
    assert "webhook delivered" in log
    assert SECRET not in log
    assert "/hooks/handoff" not in log


@pytest.mark.parametrize("receiver", [[400]], indirect=True)
def test_a_webhook_refused_with_400_is_not_retried(make_stack, receiver: Receiver) -> None:
    stack = _webhook_stack(make_stack, receiver)
    client = redis.Redis(port=stack.ports["redis"])
    upload_id = _accepted(stack.upload([("a.bin", b"refuse me")]))

    assert eventually(lambda: client.hlen(f"dramatiq:{WEBHOOK_QUEUE}.XQ.msgs") == 1, timeout=60)

    assert receiver.count() == 1
    assert receiver.deliveries[0].signed
    assert _held(client, WEBHOOK_QUEUE) == 0
    assert stack.status(upload_id)["status"] == "done"
    assert "webhook refused, not retried: the receiver answered 400" in stack.log("worker")
