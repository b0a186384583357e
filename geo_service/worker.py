"""The Dramatiq side: broker set-up and the ``process_upload`` and ``deliver_webhook`` actors.

Run with ``dramatiq geo_service.worker --queues <queue> <webhook queue>``.
The API never imports this module; it enqueues by actor name and queue.
"""

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, Middleware

# Before anything that imports prometheus_client: importing it points
# prometheus_client at Dramatiq's multiprocess folder.
from geo_service.worker_metrics import WorkerMetrics

# isort: split
from geo_service import hooks, jobs
from geo_service.store import UploadStore
from handoff.config import load_or_exit
from handoff.jobs import JobQueue
from handoff.logs import setup_logging
from handoff.probe import beat
from handoff.processors import ValidationFailed, installed_or_exit

HEARTBEAT_SECONDS = 30.0

settings = load_or_exit(signs_webhooks=True)
setup_logging(settings.log_level, "worker")
log = logging.getLogger("handoff.worker")
processors = installed_or_exit()
for _name in processors.unclaimed:
    log.warning("%s names no installed processor; it is ignored", _name)


class Heartbeat(Middleware):
    """Refreshes the worker's liveness file while the worker process runs."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop = threading.Event()
        threading.Thread(target=self._loop, name="heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while True:
            beat("worker")
            if self._stop.wait(HEARTBEAT_SECONDS):
                return


# A worker that dies holding messages is noticed after the heartbeat timeout;
# the next queue maintenance (a chance per million commands) requeues them.
broker = RedisBroker(
    url=settings.redis_url or None,
    heartbeat_timeout=int(settings.broker_heartbeat_timeout * 1000),
    maintenance_chance=settings.broker_maintenance_chance,
)
broker.add_middleware(CurrentMessage())
broker.add_middleware(WorkerMetrics(settings.worker_metrics_port))
broker.add_middleware(Heartbeat())
dramatiq.set_broker(broker)

_store = UploadStore(settings.uploads_root)
# Announcements go through a client with short timeouts, like the API's
# enqueue: a dead Redis must not hold the upload's lock for long.
_announcer = hooks.Announcer.from_settings(settings, JobQueue(settings))
_webhook = hooks.Webhook.from_settings(settings)


def _retries() -> int:
    """How many times Dramatiq already retried the message being processed."""
    message = CurrentMessage.get_current_message()
    return message.options.get("retries", 0) if message else 0


@dramatiq.actor(
    actor_name="process_upload",
    queue_name=settings.queue,
    max_retries=settings.job_max_retries,
    min_backoff=int(settings.job_min_backoff * 1000),
    throws=(ValidationFailed,),
)
def process_upload(upload_id: str, purpose: str, metadata: dict[str, Any]) -> None:
    jobs.run(_store, upload_id, purpose, metadata, processors,
             final_attempt=_retries() >= settings.job_max_retries, announcer=_announcer)


@dramatiq.actor(
    actor_name=hooks.WEBHOOK_ACTOR,
    queue_name=settings.webhook_queue,
    max_retries=settings.webhook_max_retries,
    min_backoff=int(settings.webhook_min_backoff * 1000),
    max_backoff=int(settings.webhook_max_backoff * 1000),
    throws=(hooks.DeliveryRefused,),
)
def deliver_webhook(event: dict[str, Any]) -> None:
    retries = _retries()
    hooks.deliver(_webhook, event, attempt=retries + 1,
                  final=retries >= settings.webhook_max_retries)
