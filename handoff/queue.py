"""Enqueueing by actor name, without importing the receiving worker's code.

The API enqueues each accepted upload here, and the sweeper re-enqueues one
whose message the broker lost, so both build the very same message. The
announcements of finished uploads (:mod:`geo_service.jobs.hooks`) go out the
same way, to the application's actor and to the webhook delivery actor.
"""

from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name
from redis.exceptions import RedisError

from handoff.config import Settings, replica_queue

ACTOR = "process_upload"


class QueueUnavailable(Exception):
    """The broker did not take the message."""


class JobQueue:
    def __init__(self, settings: Settings) -> None:
        self._queue = settings.queue
        self._shared = settings.shared_store
        # The geo replica's own queue (the sweeper's requeues); the API names a replica per job.
        self._own_queue = settings.job_queue
        # Short timeouts: a dead Redis must turn into a quick 503, not a hung upload.
        # (RedisBroker ignores connection parameters given next to a URL.)
        client = redis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0",
                                      socket_timeout=5, socket_connect_timeout=5)
        self._broker = RedisBroker(client=client)

    def enqueue(self, upload_id: str, purpose: str, metadata: dict,
                replica: str | None = None) -> str:
        """Put the job on the queue of ``replica`` (default: this process's own); its message id.

        With a shared store every replica's queue is the one queue.

        The message is built for that queue: Dramatiq's ``send_with_options``
        would keep the actor's queue (dramatiq#55), and its delayed retries
        return to the queue the message names, so they stay on the replica.
        """
        queue = (self._own_queue if replica is None
                 else replica_queue(self._queue, replica, self._shared))
        return self.send(queue, ACTOR, (upload_id, purpose, metadata))

    def send(self, queue_name: str, actor_name: str, args: tuple[Any, ...]) -> str:
        """Enqueue a message for whichever worker declares ``actor_name``; returns its id.

        The message carries no options: the receiving actor's own retry
        settings apply, wherever it is declared.
        """
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=queue_name, actor_name=actor_name, args=args, kwargs={}, options={})
        try:
            return self._broker.enqueue(message).message_id
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(str(exc)) from None

    def held_message_ids(self) -> set[str]:
        """Ids of every message the broker still has: pending, delayed or in flight.

        Dramatiq's Redis broker keeps each message's body in the hash
        ``<namespace>:<queue>.msgs`` (``<queue>.DQ.msgs`` while delayed for
        a retry) from enqueue until the worker acks it, in flight included.
        The hash is keyed by a per-enqueue Redis id, not the message id, so
        the bodies are scanned; this costs one pass over the backlog.
        """
        client = self._broker.client
        namespace = self._broker.namespace
        held: set[str] = set()
        try:
            for name in (self._own_queue, dq_name(self._own_queue)):
                for _, body in client.hscan_iter(f"{namespace}:{name}.msgs"):
                    held.add(dramatiq.Message.decode(body).message_id)
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(str(exc)) from None
        return held

    def ready(self) -> str | None:
        try:
            self._broker.client.ping()
        except (RedisError, OSError) as exc:
            return str(exc)
        return None
