"""Telling the application that an upload finished: its own actor, a signed webhook, or both.

When an upload ends, done or failed, whoever records the outcome (the
worker, or the sweeper giving up on a message the queue kept losing)
announces it on every configured channel, by enqueueing a Dramatiq message
by actor name, the way the API enqueues the job:

- ``actor``: ``HANDOFF_ON_FINISH_ACTOR`` on ``HANDOFF_ON_FINISH_QUEUE``. The
  application's own worker declares an actor of that name and receives the
  event (:func:`finished_event`) as its one argument, without importing handoff.
- ``webhook``: :data:`WEBHOOK_ACTOR` on ``HANDOFF_WEBHOOK_QUEUE``, run by the
  handoff worker. It POSTs the event to ``HANDOFF_WEBHOOK_URL``, signed
  (:func:`signature`), and Dramatiq retries it with backoff until the
  receiver answers 2xx.

The outcome is recorded first and never depends on the broker. What is
still to be enqueued is written beside it beforehand and crossed off as the
broker takes it, so a crash or a Redis outage only delays an announcement:
the sweeper sends what is left. Callers hold the upload's lock, and the
outcome is recorded only on the transition to done or failed, so each
finish is announced once.
"""

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import dramatiq
import requests

from geo_service.store import UploadStore
from handoff.auth import ANONYMOUS
from handoff.config import Settings
from handoff.jsontext import dumps
from handoff.queue import QueueUnavailable

log = logging.getLogger("handoff.hooks")

EVENT = "upload.finished"
WEBHOOK_ACTOR = "deliver_webhook"
ACTOR_CHANNEL = "actor"
WEBHOOK_CHANNEL = "webhook"
SIGNATURE_HEADER = "Handoff-Signature"
EVENT_HEADER = "Handoff-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# How old a signature a receiver should accept, in seconds.
TOLERANCE = 300
# 4xx answers that invite a retry: timeout, too early, too many requests.
# Any other 4xx says the request itself is wrong, and resending cannot help.
RETRIED_4XX = frozenset({408, 425, 429})


# -- the event -----------------------------------------------------------------

def finished_event(upload_id: str, manifest: Mapping[str, Any],
                   result: Mapping[str, Any]) -> dict[str, Any]:
    """The announcement, with the names and values ``GET /v1/uploads/<id>`` uses.

    It carries everything a receiver needs (the tenant too), so that the
    receiver need not call back, and a retried delivery sends the same event
    whatever became of the upload since.
    """
    return {
        "event": EVENT,
        "id": upload_id,
        "tenant": manifest.get("tenant") or ANONYMOUS,
        "purpose": manifest.get("purpose"),
        "metadata": manifest.get("metadata"),
        "status": result["status"],
        "result": result.get("result"),
        "error": result.get("error"),
        "finished_at": result.get("finished_at"),
    }


def encode(event: Mapping[str, Any]) -> bytes:
    """The webhook's body: the very bytes the signature covers."""
    return dumps(event, separators=(",", ":"), sort_keys=True).encode()


# -- signing -------------------------------------------------------------------

def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``, as Stripe signs.

    The timestamp is inside the MAC, so a captured request cannot be
    replayed later than the receiver's tolerance.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float,
           tolerance: float = TOLERANCE) -> bool:
    """Whether ``header`` signs ``body`` with ``secret``, made within ``tolerance`` of ``now``."""
    items = [part.strip().partition("=") for part in header.split(",")]
    stamps = [_whole_number(value) for key, _, value in items if key == "t"]
    macs = [value.encode() for key, _, value in items if key == "v1"]
    if len(stamps) != 1 or stamps[0] is None or not macs:
        return False
    timestamp = stamps[0]
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).rpartition("v1=")[2].encode()
    return any(hmac.compare_digest(expected, mac) for mac in macs)


def _whole_number(text: str) -> int | None:
    """``text`` as a non-negative integer in ASCII digits, else None."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def webhook_headers(secret: str, upload_id: str, body: bytes, now: float) -> dict[str, str]:
    """Headers of one delivery attempt; each attempt is signed anew, so a late retry verifies."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "handoff-webhook",
        EVENT_HEADER: EVENT,
        IDEMPOTENCY_HEADER: upload_id,
        SIGNATURE_HEADER: signature(secret, int(now), body),
    }


# -- delivering ----------------------------------------------------------------

class DeliveryFailed(dramatiq.Retry):
    """The receiver could not take the event now; Dramatiq retries it with backoff."""


class DeliveryRefused(Exception):
    """The receiver refused the request itself; it is not sent again."""


def check_answer(status: int, retry_after: str | None,
                 bounds: tuple[float, float]) -> None:
    """Raise unless ``status`` means delivered.

    A ``Retry-After`` in seconds sets the next delay, held within ``bounds``
    (the configured backoff), so a receiver can slow deliveries down but
    cannot stop them or push one past what Dramatiq can delay.
    """
    if 200 <= status < 300:
        return
    reason = f"the receiver answered {status}"
    if 400 <= status < 500 and status not in RETRIED_4XX:
        raise DeliveryRefused(reason)
    seconds = _whole_number(retry_after or "")
    delay = None
    if seconds is not None:
        low, high = bounds
        delay = int(min(max(seconds, low), high) * 1000)
    raise DeliveryFailed(reason, delay=delay)


@dataclass(frozen=True)
class Webhook:
    """Where and how finished uploads are POSTed."""

    url: str
    secret: str = field(repr=False)
    timeout: float
    min_backoff: float
    max_backoff: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "Webhook | None":
        if not settings.webhook_url:
            return None
        return cls(settings.webhook_url, settings.webhook_secret, settings.webhook_timeout,
                   settings.webhook_min_backoff, settings.webhook_max_backoff)

    @property
    def target(self) -> str:
        """The receiver for logs: scheme and host only, since a path or query may hold a token."""
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"

    def post(self, event: Mapping[str, Any]) -> int:
        """Send the event once; returns the status, or raises as :func:`check_answer` does.

        Redirects are not followed (they are answers like any other non-2xx),
        and the answer's body is never read.
        """
        body = encode(event)
        headers = webhook_headers(self.secret, str(event["id"]), body, time.time())
        try:
            response = requests.post(self.url, data=body, headers=headers, timeout=self.timeout,
                                     allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            raise DeliveryFailed(f"{self.target} unreachable: {type(exc).__name__}") from None
        response.close()
        check_answer(response.status_code, response.headers.get("Retry-After"),
                     (self.min_backoff, self.max_backoff))
        return response.status_code


def deliver(webhook: Webhook | None, event: Mapping[str, Any], *, attempt: int,
            final: bool) -> None:
    """One delivery attempt of the ``deliver_webhook`` actor, logged; raises to retry or stop."""
    extra = {"upload_id": event.get("id"), "attempt": attempt}
    if webhook is None:
        log.warning("webhook delivery dropped: HANDOFF_WEBHOOK_URL is not set here", extra=extra)
        return
    try:
        status = webhook.post(event)
    except DeliveryRefused as exc:
        log.error("webhook refused, not retried: %s", exc, extra=extra)
        raise
    except DeliveryFailed as exc:
        if final:
            log.error("webhook not delivered, giving up: %s", exc, extra=extra)
        else:
            log.warning("webhook not delivered, will retry: %s", exc, extra=extra)
        raise
    log.info("webhook delivered", extra={**extra, "status": status})


# -- announcing ----------------------------------------------------------------

class Sender(Protocol):
    """Enqueues by actor name (:class:`handoff.queue.JobQueue`)."""

    def send(self, queue_name: str, actor_name: str, args: tuple[Any, ...]) -> str: ...


@dataclass(frozen=True)
class Channel:
    queue: str
    actor: str


class Announcer:
    """The channels finished uploads are announced on, and the broker that takes them."""

    def __init__(self, channels: Mapping[str, Channel] | None = None,
                 sender: Sender | None = None) -> None:
        if channels and sender is None:
            raise ValueError("channels need a sender")
        self._channels = dict(channels or {})
        self._sender = sender

    @classmethod
    def from_settings(cls, settings: Settings, sender: Sender) -> "Announcer":
        channels = {}
        if settings.on_finish_actor:
            channels[ACTOR_CHANNEL] = Channel(settings.on_finish_queue, settings.on_finish_actor)
        if settings.webhook_url:
            channels[WEBHOOK_CHANNEL] = Channel(settings.webhook_queue, WEBHOOK_ACTOR)
        return cls(channels, sender)

    @property
    def channels(self) -> list[str]:
        return list(self._channels)

    def send(self, channel: str, event: Mapping[str, Any]) -> None:
        """Enqueue the event on one channel; raises :class:`QueueUnavailable`."""
        extra = {"upload_id": event.get("id"), "channel": channel}
        target = self._channels.get(channel)
        if target is None or self._sender is None:
            log.warning("announcement dropped: channel %s is no longer configured", channel,
                        extra=extra)
            return
        message_id = self._sender.send(target.queue, target.actor, (dict(event),))
        log.info("announced %s to %s on %s", event.get("status"), target.actor, target.queue,
                 extra={**extra, "message_id": message_id})


SILENT = Announcer()


def finish_upload(store: UploadStore, upload_id: str, result: dict[str, Any],
                  announcer: Announcer) -> None:
    """Record the outcome, then announce it; the caller holds the upload's lock.

    An announcement the broker does not take now stays recorded for the
    sweeper to send (:func:`announce_pending`); the outcome stands either way.
    """
    if announcer.channels:
        manifest = store.manifest(upload_id) or {}
        store.set_announcement(upload_id, {"event": finished_event(upload_id, manifest, result),
                                           "pending": announcer.channels})
    store.finish(upload_id, result)
    try:
        announce_pending(store, upload_id, announcer)
    except QueueUnavailable as exc:
        log.warning("outcome recorded, announcement left for the sweeper: broker unavailable: %s",
                    exc, extra={"upload_id": upload_id})


def announce_pending(store: UploadStore, upload_id: str, announcer: Announcer) -> bool:
    """Enqueue the upload's announcements still due; whether there were any.

    The caller holds the lock. Each channel is crossed off once the broker
    took its message, so a retry after a partial failure repeats none.
    Raises :class:`QueueUnavailable`, keeping what is left.
    """
    record = store.announcement(upload_id)
    if record is None:
        return False
    pending = list(record.get("pending", []))
    while pending:
        try:
            announcer.send(pending[0], record["event"])
        except QueueUnavailable:
            if pending != record.get("pending"):
                store.set_announcement(upload_id, {**record, "pending": pending})
            raise
        pending.pop(0)
    store.clear_announcement(upload_id)
    return True
