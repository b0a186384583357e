"""The webhook channel of announcements: the handoff worker POSTs each event, signed.

Announcing is :mod:`handoff.announce`: it enqueues the event by actor name.
On the ``webhook`` channel that actor is :data:`WEBHOOK_ACTOR` on
``HANDOFF_WEBHOOK_QUEUE``, run by the handoff worker: it POSTs the event to
``HANDOFF_WEBHOOK_URL``, signed (:func:`signature`), and Dramatiq retries
it with backoff until the receiver answers 2xx.
"""

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import requests

from handoff.announce import EVENT
from handoff.config import Settings
from handoff.jsontext import dumps

log = logging.getLogger("handoff.hooks")

SIGNATURE_HEADER = "Handoff-Signature"
EVENT_HEADER = "Handoff-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# How old a signature a receiver should accept, in seconds.
TOLERANCE = 300
# 4xx answers that invite a retry: timeout, too early, too many requests.
# Any other 4xx says the request itself is wrong, and resending cannot help.
RETRIED_4XX = frozenset({408, 425, 429})


# -- the event -----------------------------------------------------------------

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
