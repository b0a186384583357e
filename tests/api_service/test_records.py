"""The record of which replica holds an upload, over a stand-in for the Redis client."""

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from api_service.records import MARGIN, RecordUnavailable, ReplicaRecords, record_ttl
from handoff.config import Settings

UPLOAD_ID = "0b6f2c1e-5d7a-4c39-9a43-7d4c2f0e8a11"


class FakeRedis:
    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, int]] = {}
        self.down = False

    def set(self, key: str, value: str, ex: int) -> None:
        self._check()
        self.values[key] = (value.encode(), ex)

    def get(self, key: str) -> bytes | None:
        self._check()
        return self.values[key][0] if key in self.values else None

    def _check(self) -> None:
        if self.down:
            raise RedisConnectionError("Connection refused")


def _records(fake: FakeRedis, ttl: int = 100) -> ReplicaRecords:
    client: Any = fake
    return ReplicaRecords(client, ttl)


def test_a_record_is_kept_under_its_key_with_the_ttl() -> None:
    fake = FakeRedis()
    _records(fake, ttl=77).remember(UPLOAD_ID, "geo-1")
    assert fake.values == {f"handoff:replica:{UPLOAD_ID}": (b"geo-1", 77)}
    assert _records(fake).lookup(UPLOAD_ID) == "geo-1"


def test_no_record_reads_as_none() -> None:
    assert _records(FakeRedis()).lookup(UPLOAD_ID) is None


@pytest.mark.parametrize("call", ["remember", "lookup"])
def test_redis_down_is_said_so(call: str) -> None:
    fake = FakeRedis()
    fake.down = True
    records = _records(fake)
    with pytest.raises(RecordUnavailable):
        records.remember(UPLOAD_ID, "geo-1") if call == "remember" else records.lookup(UPLOAD_ID)


def test_a_record_outlives_every_stage_of_its_upload() -> None:
    settings = Settings(partial_ttl=3600.0, orphan_ttl=600.0, retention=86400.0)
    assert record_ttl(settings) == 3600 + 600 + 86400 + MARGIN
    assert record_ttl(Settings(retention=7 * 86400.0)) > record_ttl(settings)
