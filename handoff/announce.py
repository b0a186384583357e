"""Telling the application that an upload finished: its own actor, a signed webhook, or both.

When an upload ends, done or failed, whoever records the outcome (the
worker, or the sweeper giving up on a message the queue kept losing)
announces it on every configured channel, by enqueueing a Dramatiq message
by actor name, the way the API enqueues the job:

- ``actor``: ``HANDOFF_ON_FINISH_ACTOR`` on ``HANDOFF_ON_FINISH_QUEUE``. The
  application's own worker declares an actor of that name and receives the
  event (:func:`finished_event`) as its one argument, without importing handoff.
- ``webhook``: :data:`WEBHOOK_ACTOR` on ``HANDOFF_WEBHOOK_QUEUE``, run by the
  handoff worker (:mod:`geo_service.jobs.hooks`).

The outcome is recorded first and never depends on the broker. What is
still to be enqueued is recorded with it and crossed off as the broker
takes it, so a crash or a Redis outage only delays an announcement: the
sweeper sends what is left. Callers hold the upload's lock, and the outcome
is recorded only on the transition to done or failed, so each finish is
announced once.

This module only enqueues: it needs neither Dramatiq's actors nor an HTTP
client, so the sweeper imports it as the worker does. The store is reached
through :class:`Outcomes`, so handoff imports no service.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from handoff.auth import ANONYMOUS
from handoff.config import Settings
from handoff.queue import QueueUnavailable

log = logging.getLogger("handoff.hooks")

EVENT = "upload.finished"
WEBHOOK_ACTOR = "deliver_webhook"
ACTOR_CHANNEL = "actor"
WEBHOOK_CHANNEL = "webhook"


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


# -- announcing ----------------------------------------------------------------

class Outcomes(Protocol):
    """What announcing needs of the upload store (:class:`geo_service.store.UploadStore`)."""

    def manifest(self, upload_id: str) -> dict[str, Any] | None: ...

    def finish(self, upload_id: str, result: dict[str, Any],
               announcement: dict[str, Any] | None = None) -> None: ...

    def announcement(self, upload_id: str) -> dict[str, Any] | None: ...

    def set_announcement(self, upload_id: str, record: dict[str, Any]) -> None: ...

    def clear_announcement(self, upload_id: str) -> None: ...


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


def finish_upload(store: Outcomes, upload_id: str, result: dict[str, Any],
                  announcer: Announcer) -> None:
    """Record the outcome with what is to be announced, then announce it; the caller holds the lock.

    An announcement the broker does not take now stays recorded for the
    sweeper to send (:func:`announce_pending`); the outcome stands either way.
    """
    announcement = None
    if announcer.channels:
        manifest = store.manifest(upload_id) or {}
        announcement = {"event": finished_event(upload_id, manifest, result),
                        "pending": announcer.channels}
    store.finish(upload_id, result, announcement)
    try:
        announce_pending(store, upload_id, announcer)
    except QueueUnavailable as exc:
        log.warning("outcome recorded, announcement left for the sweeper: broker unavailable: %s",
                    exc, extra={"upload_id": upload_id})


def announce_pending(store: Outcomes, upload_id: str, announcer: Announcer) -> bool:
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
