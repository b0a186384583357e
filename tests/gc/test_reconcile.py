"""The reconciler against a real store on disk, with a broker that only remembers ids."""

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from geo_service.store import FileStore, State, UploadStore
from handoff.announce import ACTOR_CHANNEL, Announcer, Channel
from handoff.queue import QueueUnavailable
from handoff_gc.reconcile import reconcile
from tests.gc import age_tree, make_upload
from tests.geo_service.store import disk
from tests.support.senders import RecordingSender

AFTER = 600.0
MAX = 2


class RecordingBroker:
    """Holds the ids it is told to, and records what is enqueued."""

    def __init__(self, held: set[str] | None = None) -> None:
        self.held = held or set()
        self.enqueued: list[tuple[str, str, dict]] = []

    def held_message_ids(self) -> set[str]:
        return set(self.held)

    def enqueue(self, upload_id: str, purpose: str, metadata: dict) -> str:
        self.enqueued.append((upload_id, purpose, metadata))
        return f"new-{len(self.enqueued)}"


@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    return FileStore(tmp_path / "uploads")


def queued(store: UploadStore, age: float, message_id: str = "m-1", requeues: int = 0) -> str:
    upload_id = make_upload(store, "queued")
    store.seal(upload_id, {"files": [], "purpose": "raw", "metadata": {"k": 1}})
    store.mark_queued(upload_id, {"message_id": message_id, "requeues": requeues})
    age_tree(disk.folder(store, upload_id), age)
    return upload_id


def test_a_lost_message_is_enqueued_again_with_the_same_arguments(store: UploadStore) -> None:
    upload_id = queued(store, AFTER + 60)
    broker = RecordingBroker()

    outcomes = reconcile(store, broker, AFTER, MAX)

    assert broker.enqueued == [(upload_id, "raw", {"k": 1})]
    job = store.job(upload_id)
    assert job is not None
    assert (job["message_id"], job["requeues"]) == ("new-1", 1)
    assert outcomes["requeue"] == 1
    assert store.state(upload_id) is State.QUEUED


def test_a_requeued_upload_waits_a_full_period_before_the_next(store: UploadStore) -> None:
    queued(store, AFTER + 60)
    broker = RecordingBroker()
    reconcile(store, broker, AFTER, MAX)

    reconcile(store, broker, AFTER, MAX)

    assert len(broker.enqueued) == 1


@pytest.mark.parametrize("age", [AFTER + 60, 10**6])
def test_a_held_message_is_left_alone(store: UploadStore, age: float) -> None:
    upload_id = queued(store, age)
    before = store.job(upload_id)

    outcomes = reconcile(store, RecordingBroker({"m-1"}), AFTER, MAX)

    assert store.job(upload_id) == before
    assert outcomes["held"] == 1


def test_a_young_upload_is_not_asked_about(store: UploadStore) -> None:
    queued(store, 10)
    broker = RecordingBroker()

    assert reconcile(store, broker, AFTER, MAX) == {}
    assert broker.enqueued == []


def test_after_the_bound_the_upload_fails_with_the_reason(store: UploadStore) -> None:
    upload_id = queued(store, AFTER + 60, requeues=MAX)
    broker = RecordingBroker()

    reconcile(store, broker, AFTER, MAX)

    assert broker.enqueued == []
    assert store.state(upload_id) is State.FAILED
    result = store.result(upload_id)
    assert result is not None
    assert "lost this upload's message 3 times" in result["error"]


def test_a_locked_upload_is_skipped(store: UploadStore,
                                    hold_lock: Callable[..., subprocess.Popen]) -> None:
    upload_id = queued(store, AFTER + 60)
    hold_lock(store, upload_id)
    broker = RecordingBroker()

    outcomes = reconcile(store, broker, AFTER, MAX)

    assert outcomes["busy"] == 1
    assert broker.enqueued == []


def claimed(store: UploadStore, age: float) -> str:
    """A claimed upload whose worker is gone (nobody holds its lock), its message "m-1"."""
    upload_id = queued(store, 0)
    store.claim(upload_id, {"worker": "gone"})
    age_tree(disk.folder(store, upload_id), age)
    return upload_id


def test_a_claimed_upload_whose_message_is_lost_is_enqueued_again(store: UploadStore) -> None:
    upload_id = claimed(store, AFTER + 60)
    broker = RecordingBroker()

    outcomes = reconcile(store, broker, AFTER, MAX)

    assert broker.enqueued == [(upload_id, "raw", {"k": 1})]
    assert outcomes["requeue"] == 1
    job = store.job(upload_id)
    assert job is not None and job["message_id"] == "new-1"


def test_a_claimed_upload_whose_message_the_broker_holds_is_left_alone(
        store: UploadStore) -> None:
    claimed(store, AFTER + 60)
    broker = RecordingBroker({"m-1"})

    reconcile(store, broker, AFTER, MAX)

    assert broker.enqueued == []


def test_a_claimed_upload_a_worker_holds_is_skipped(
        store: UploadStore, hold_lock: Callable[..., subprocess.Popen]) -> None:
    upload_id = claimed(store, AFTER + 60)
    hold_lock(store, upload_id)
    broker = RecordingBroker()

    assert reconcile(store, broker, AFTER, MAX)["busy"] == 1
    assert broker.enqueued == []


CHANNELS = {ACTOR_CHANNEL: Channel("handoff-events", "upload_finished")}


def left_over(store: UploadStore) -> str:
    """A done upload whose announcement the broker did not take when it finished."""
    upload_id = make_upload(store, "done")
    store.set_announcement(upload_id, {"event": {"id": upload_id, "status": "done"},
                                       "pending": [ACTOR_CHANNEL]})
    return upload_id


def test_a_give_up_is_announced_like_any_failure(store: UploadStore) -> None:
    upload_id = queued(store, AFTER + 60, requeues=MAX)
    sender = RecordingSender()

    reconcile(store, RecordingBroker(), AFTER, MAX, Announcer(CHANNELS, sender))

    [(queue, actor, (event,))] = sender.sent
    assert (queue, actor) == ("handoff-events", "upload_finished")
    assert (event["id"], event["status"], event["purpose"]) == (upload_id, "failed", "raw")
    assert "lost this upload's message 3 times" in event["error"]
    assert store.announcement(upload_id) is None


def test_a_left_over_announcement_is_sent_by_the_next_pass_once(store: UploadStore) -> None:
    upload_id = left_over(store)
    sender = RecordingSender()
    announcer = Announcer(CHANNELS, sender)

    assert reconcile(store, RecordingBroker(), AFTER, MAX, announcer) == {"announced": 1}
    assert reconcile(store, RecordingBroker(), AFTER, MAX, announcer) == {}

    assert sender.sent == [("handoff-events", "upload_finished",
                            ({"id": upload_id, "status": "done"},))]
    assert store.announcement(upload_id) is None


def test_a_left_over_announcement_waits_for_the_broker(store: UploadStore) -> None:
    upload_id = left_over(store)
    before = store.announcement(upload_id)
    down = RecordingSender(down_for=frozenset({"upload_finished"}))

    with pytest.raises(QueueUnavailable):
        reconcile(store, RecordingBroker(), AFTER, MAX, Announcer(CHANNELS, down))

    assert store.announcement(upload_id) == before


def test_a_left_over_announcement_of_a_locked_upload_waits(
        store: UploadStore, hold_lock: Callable[..., subprocess.Popen]) -> None:
    upload_id = left_over(store)
    hold_lock(store, upload_id)
    sender = RecordingSender()

    assert reconcile(store, RecordingBroker(), AFTER, MAX,
                     Announcer(CHANNELS, sender)) == {"busy": 1}
    assert sender.sent == []
