"""Which geo replica holds an upload: ``handoff:replica:<upload_id>`` in Redis.

Written before the first byte goes to the replica, so any API process can
find the upload afterwards. It expires once the upload can no longer
exist: a partial upload lives ``partial_ttl``, a sealed one without a job
``orphan_ttl``, a finished one ``retention``; a day more covers a job that
waits in the queue. A lost record is not fatal: the replicas are asked
(:mod:`api_service.replicas`) and the answer written back.
"""

import redis
from redis.exceptions import RedisError

from handoff.config import Settings
from handoff.units import parse_duration

KEY = "handoff:replica:{}"
MARGIN = parse_duration("1d")


class RecordUnavailable(Exception):
    """Redis did not take or give the record."""


def record_ttl(settings: Settings) -> int:
    """Seconds a record is kept: as long as the upload it names can live, and a margin."""
    return int(settings.partial_ttl + settings.orphan_ttl + settings.retention + MARGIN)


class ReplicaRecords:
    def __init__(self, client: redis.Redis, ttl: int) -> None:
        self._client = client
        self._ttl = ttl

    @classmethod
    def from_settings(cls, settings: Settings) -> "ReplicaRecords":
        # Short timeouts, as for the job queue: a dead Redis is a quick answer.
        client = redis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0",
                                      socket_timeout=5, socket_connect_timeout=5)
        return cls(client, record_ttl(settings))

    def remember(self, upload_id: str, replica: str) -> None:
        try:
            self._client.set(KEY.format(upload_id), replica, ex=self._ttl)
        except (RedisError, OSError) as exc:
            raise RecordUnavailable(str(exc)) from None

    def lookup(self, upload_id: str) -> str | None:
        """The replica recorded for the upload; None when there is no record."""
        try:
            value = self._client.get(KEY.format(upload_id))
        except (RedisError, OSError) as exc:
            raise RecordUnavailable(str(exc)) from None
        return value.decode() if isinstance(value, bytes) else None
