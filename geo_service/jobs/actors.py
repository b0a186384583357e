"""The worker's two actors, ``process_upload`` and ``deliver_webhook``, on a given broker.

The API and the sweeper enqueue by these names and queues, without
importing this module. Each actor keeps what it needs (the store, the
processors, the announcer) in its closure, so declaring them reads the
settings once and leaves no module state behind.
"""

import logging
import math
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from geo_service.jobs import hooks, run
from geo_service.jobs.sandbox import Limits
from geo_service.jobs.scratch import Scratch
from geo_service.store import open_store
from handoff import announce
from handoff.config import Settings
from handoff.processors import ValidationFailed, installed_or_exit
from handoff.queue import ACTOR, JobQueue

log = logging.getLogger("handoff.worker")


def _retries() -> int:
    """How many times Dramatiq already retried the message being processed."""
    message = CurrentMessage.get_current_message()
    return message.options.get("retries", 0) if message else 0


def declare_actors(broker: dramatiq.Broker, settings: Settings) -> list[dramatiq.Actor]:
    """Declare both actors on ``broker``; it needs the ``CurrentMessage`` middleware."""
    processors = installed_or_exit()
    for name in processors.unclaimed:
        log.warning("%s names no installed processor; it is ignored", name)
    store = open_store(settings)
    # Announcements go through a client with short timeouts, like the API's
    # enqueue: a dead Redis must not hold the upload's lock for long.
    announcer = announce.Announcer.from_settings(settings, JobQueue(settings))
    webhook = hooks.Webhook.from_settings(settings)
    limits = Limits.from_settings(settings)
    scratch = Scratch.from_settings(settings)

    # No Dramatiq time limit: it would cut a processor short of
    # HANDOFF_PROCESSOR_TIME_LIMIT, which the sandbox enforces by killing the
    # child; the checks before it are bounded by the upload's size.
    @dramatiq.actor(
        broker=broker,
        actor_name=ACTOR,
        queue_name=settings.job_queue,
        max_retries=settings.job_max_retries,
        min_backoff=int(settings.job_min_backoff * 1000),
        time_limit=math.inf,
        throws=(ValidationFailed,),
    )
    def process_upload(upload_id: str, purpose: str, metadata: dict[str, Any]) -> None:
        run.run(store, upload_id, purpose, metadata, processors, scratch=scratch,
                 final_attempt=_retries() >= settings.job_max_retries, announcer=announcer,
                 limits=limits)

    @dramatiq.actor(
        broker=broker,
        actor_name=announce.WEBHOOK_ACTOR,
        queue_name=settings.webhook_queue,
        max_retries=settings.webhook_max_retries,
        min_backoff=int(settings.webhook_min_backoff * 1000),
        max_backoff=int(settings.webhook_max_backoff * 1000),
        throws=(hooks.DeliveryRefused,),
    )
    def deliver_webhook(event: dict[str, Any]) -> None:
        retries = _retries()
        hooks.deliver(webhook, event, attempt=retries + 1,
                      final=retries >= settings.webhook_max_retries)

    return [process_upload, deliver_webhook]
