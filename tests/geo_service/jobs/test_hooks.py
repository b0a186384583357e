"""The completion hooks' own logic: the event, signing, answers, and announcing on a real store."""

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from geo_service.jobs import hooks
from geo_service.jobs.hooks import DeliveryFailed, DeliveryRefused, Webhook, check_answer
from geo_service.store import FileStore, State, UploadStore
from handoff import announce
from handoff.announce import (
    ACTOR_CHANNEL,
    WEBHOOK_ACTOR,
    WEBHOOK_CHANNEL,
    Announcer,
    Channel,
    announce_pending,
    finish_upload,
)
from handoff.config import load_settings
from handoff.queue import QueueUnavailable
from tests.support.senders import RecordingSender

ROOT = Path(__file__).resolve().parents[3]
UPLOAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SECRET = "whsec-test"
NOW = 1_767_225_600
MANIFEST = {"id": UPLOAD_ID, "tenant": "alice", "purpose": "raw", "metadata": {"project": "p1"},
            "files": []}
DONE = {"status": "done", "finished_at": 1767225600.25, "seconds": 0.5,
        "result": {"verified": True}}
FAILED = {"status": "failed", "finished_at": 1767225601.0, "error": "not a zip file"}
CHANNELS = {ACTOR_CHANNEL: Channel("handoff-events", "upload_finished"),
            WEBHOOK_CHANNEL: Channel("handoff-webhooks", WEBHOOK_ACTOR)}
BOUNDS = (1.0, 60.0)


# -- the event -----------------------------------------------------------------

def test_a_done_event_says_who_what_and_the_result() -> None:
    assert announce.finished_event(UPLOAD_ID, MANIFEST, DONE) == {
        "event": "upload.finished", "id": UPLOAD_ID, "tenant": "alice", "purpose": "raw",
        "metadata": {"project": "p1"}, "status": "done", "result": {"verified": True},
        "error": None, "finished_at": 1767225600.25,
    }


def test_a_failed_event_carries_the_error_and_no_result() -> None:
    event = announce.finished_event(UPLOAD_ID, MANIFEST, FAILED)
    assert (event["status"], event["result"], event["error"]) == ("failed", None, "not a zip file")


def test_an_upload_without_a_recorded_tenant_is_anonymous() -> None:
    manifest = {key: value for key, value in MANIFEST.items() if key != "tenant"}
    assert announce.finished_event(UPLOAD_ID, manifest, DONE)["tenant"] == "anonymous"


def test_the_body_is_compact_sorted_json_of_the_event() -> None:
    event = announce.finished_event(UPLOAD_ID, MANIFEST, DONE)
    body = hooks.encode(event)
    assert json.loads(body) == event
    assert body == hooks.encode(dict(reversed(event.items())))
    assert b": " not in body


# -- signing -------------------------------------------------------------------

def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"x"}'
    mac = hmac.new(SECRET.encode(), b"1767225600." + body, hashlib.sha256).hexdigest()
    assert hooks.signature(SECRET, NOW, body) == f"t={NOW},v1={mac}"


def test_a_fresh_signature_verifies() -> None:
    body = b'{"id":"x"}'
    header = hooks.signature(SECRET, NOW, body)
    assert hooks.verify(SECRET, header, body, now=NOW + 299)
    assert hooks.verify(SECRET, header.replace(",", ", "), body, now=NOW)


@pytest.mark.parametrize(("secret", "body", "now"), [
    ("other-secret", b'{"id":"x"}', NOW),
    (SECRET, b'{"id":"y"}', NOW),
    (SECRET, b'{"id":"x"}', NOW + 301),
    (SECRET, b'{"id":"x"}', NOW - 301),
])
def test_a_wrong_secret_a_changed_body_or_a_stale_time_fails(secret: str, body: bytes,
                                                              now: int) -> None:
    header = hooks.signature(SECRET, NOW, b'{"id":"x"}')
    assert not hooks.verify(secret, header, body, now=now)


@pytest.mark.parametrize("header", [
    "", "v1=abc", f"t={NOW}", f"t=soon,v1={'0' * 64}", f"t=²,v1={'0' * 64}",
    f"t={NOW},t={NOW},v1={'0' * 64}", f"t={NOW},v1=é",
])
def test_malformed_headers_fail_without_raising(header: str) -> None:
    assert not hooks.verify(SECRET, header, b"{}", now=NOW)


def test_each_attempt_is_signed_with_its_own_time() -> None:
    body = b"{}"
    first = hooks.webhook_headers(SECRET, UPLOAD_ID, body, now=NOW)
    later = hooks.webhook_headers(SECRET, UPLOAD_ID, body, now=NOW + 3600)
    assert first["Idempotency-Key"] == later["Idempotency-Key"] == UPLOAD_ID
    assert first["Handoff-Event"] == "upload.finished"
    assert first["Content-Type"] == "application/json"
    assert first["Handoff-Signature"] != later["Handoff-Signature"]
    assert hooks.verify(SECRET, later["Handoff-Signature"], body, now=NOW + 3600)


def readme_verifier() -> Callable[[str, str, bytes], bool]:
    """The receiver's check exactly as the README shows it."""
    readme = (ROOT / "README.md").read_text()
    (snippet,) = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S)
                  if "def handoff_signature_ok" in block]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    return namespace["handoff_signature_ok"]


def test_the_readme_receiver_check_accepts_our_signature_and_nothing_else() -> None:
    check = readme_verifier()
    body = hooks.encode(announce.finished_event(UPLOAD_ID, MANIFEST, DONE))
    header = hooks.webhook_headers(SECRET, UPLOAD_ID, body, time.time())["Handoff-Signature"]
    assert check(SECRET, header, body)
    assert not check("other", header, body)
    assert not check(SECRET, header, body + b" ")
    assert not check(SECRET, hooks.signature(SECRET, int(time.time()) - 400, body), body)
    assert not check(SECRET, "t=x,v1=é", body)


# -- answers -------------------------------------------------------------------

@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_is_a_delivery(status: int) -> None:
    check_answer(status, None, BOUNDS)


@pytest.mark.parametrize("status", [301, 302, 307, 408, 425, 429, 500, 502, 503, 504])
def test_redirects_timeouts_throttling_and_server_errors_are_retried(status: int) -> None:
    with pytest.raises(DeliveryFailed, match=str(status)) as caught:
        check_answer(status, None, BOUNDS)
    assert caught.value.delay is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 413, 422])
def test_other_4xx_answers_are_given_up(status: int) -> None:
    with pytest.raises(DeliveryRefused, match=str(status)):
        check_answer(status, None, BOUNDS)


@pytest.mark.parametrize(("retry_after", "delay"), [
    ("30", 30_000), ("0", 1_000), ("86400", 60_000), (" 5 ", 5_000),
    ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("-3", None), ("1.5", None),
])
def test_retry_after_in_seconds_sets_the_delay_within_the_backoff(retry_after: str,
                                                                  delay: int | None) -> None:
    with pytest.raises(DeliveryFailed) as caught:
        check_answer(429, retry_after, BOUNDS)
    assert caught.value.delay == delay


def test_a_webhook_shows_neither_its_secret_nor_its_path() -> None:
    webhook = Webhook("https://user:pw@app.example:8443/hooks/t0k3n?key=abc", SECRET, 1.0,
                      *BOUNDS)
    assert SECRET not in repr(webhook)
    assert webhook.target == "https://app.example:8443"


# -- announcing ----------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    store = FileStore(tmp_path / "uploads")
    store.create(UPLOAD_ID, "alice")
    store.seal(UPLOAD_ID, MANIFEST)
    return store


def test_the_announcer_uses_the_channels_that_are_set() -> None:
    sender = RecordingSender()
    assert Announcer.from_settings(load_settings({}), sender).channels == []
    both = load_settings({"HANDOFF_ON_FINISH_ACTOR": "app_done",
                          "HANDOFF_WEBHOOK_URL": "https://app.example/hook"})
    announcer = Announcer.from_settings(both, sender)
    assert announcer.channels == [ACTOR_CHANNEL, WEBHOOK_CHANNEL]
    announcer.send(ACTOR_CHANNEL, {"id": UPLOAD_ID})
    announcer.send(WEBHOOK_CHANNEL, {"id": UPLOAD_ID})
    assert sender.sent == [("handoff-events", "app_done", ({"id": UPLOAD_ID},)),
                           ("handoff-webhooks", "deliver_webhook", ({"id": UPLOAD_ID},))]


def test_without_channels_the_outcome_is_recorded_and_nothing_is_kept(store: UploadStore) -> None:
    finish_upload(store, UPLOAD_ID, DONE, announce.SILENT)
    assert store.state(UPLOAD_ID) is State.DONE
    assert store.announcement(UPLOAD_ID) is None


def test_each_channel_gets_the_event_once(store: UploadStore) -> None:
    sender = RecordingSender()
    finish_upload(store, UPLOAD_ID, DONE, Announcer(CHANNELS, sender))
    event = announce.finished_event(UPLOAD_ID, MANIFEST, DONE)
    assert sender.sent == [("handoff-events", "upload_finished", (event,)),
                           ("handoff-webhooks", "deliver_webhook", (event,))]
    assert store.announcement(UPLOAD_ID) is None
    assert not announce_pending(store, UPLOAD_ID, Announcer(CHANNELS, sender))
    assert len(sender.sent) == 2


def test_a_broker_outage_keeps_the_outcome_and_what_is_left(store: UploadStore) -> None:
    down = RecordingSender(down_for=frozenset({WEBHOOK_ACTOR}))
    finish_upload(store, UPLOAD_ID, FAILED, Announcer(CHANNELS, down))
    assert store.result(UPLOAD_ID) == FAILED
    assert down.actors() == ["upload_finished"]
    kept = store.announcement(UPLOAD_ID)
    assert kept is not None
    assert kept["pending"] == [WEBHOOK_CHANNEL]

    back = RecordingSender()
    assert announce_pending(store, UPLOAD_ID, Announcer(CHANNELS, back))
    assert back.sent == [("handoff-webhooks", "deliver_webhook", (kept["event"],))]
    assert store.announcement(UPLOAD_ID) is None


def test_a_retry_that_fails_again_raises_and_keeps_everything(store: UploadStore) -> None:
    down = RecordingSender(down_for=frozenset({"upload_finished", WEBHOOK_ACTOR}))
    finish_upload(store, UPLOAD_ID, DONE, Announcer(CHANNELS, down))
    before = store.announcement(UPLOAD_ID)
    assert before is not None
    assert before["pending"] == [ACTOR_CHANNEL, WEBHOOK_CHANNEL]
    with pytest.raises(QueueUnavailable):
        announce_pending(store, UPLOAD_ID, Announcer(CHANNELS, down))
    assert store.announcement(UPLOAD_ID) == before


def test_a_channel_turned_off_since_is_dropped(store: UploadStore) -> None:
    finish_upload(store, UPLOAD_ID, DONE,
                  Announcer(CHANNELS, RecordingSender(down_for=frozenset({WEBHOOK_ACTOR}))))
    sender = RecordingSender()
    assert announce_pending(store, UPLOAD_ID, Announcer({}, sender))
    assert sender.sent == []
    assert store.announcement(UPLOAD_ID) is None


def test_channels_need_a_sender() -> None:
    with pytest.raises(ValueError, match="sender"):
        Announcer(CHANNELS)


def test_a_body_is_never_made_of_what_json_parsers_refuse() -> None:
    event = announce.finished_event("u-1", {"tenant": "t", "metadata": {"x": float("nan")}},
                                 {"status": "done"})
    with pytest.raises(ValueError, match="not JSON compliant"):
        hooks.encode(event)
