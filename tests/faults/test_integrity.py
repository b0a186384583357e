"""The geo service stores other bytes than the API relayed: nothing is processed."""

import os
import time

import redis

from handoff.units import MiB
from tests.faults.tcp_proxy import CorruptingProxy
from tests.support.problems import assert_problem

FLIP_AT = 600_000


def _flip_one_byte(data: bytes, offset: int) -> bytes:
    if max(offset, 0) <= FLIP_AT < offset + len(data):
        index = FLIP_AT - offset
        return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1:]
    return data


def test_bytes_changed_between_api_and_geo_fail_the_upload(make_stack):
    geo = make_stack(components=("redis", "geo"))
    proxy = CorruptingProxy(geo.ports["geo"], _flip_one_byte, prefix=b"POST /uploads/")
    try:
        api = make_stack({**{k: v for k, v in geo.env.items() if k.startswith("HANDOFF_")},
                          "HANDOFF_GEO_URL": f"http://127.0.0.1:{proxy.port}"},
                         components=("api",))
        response = api.upload([("f.bin", os.urandom(2 * MiB))])
    finally:
        proxy.close()

    assert "different bytes" in assert_problem(response, 502, "geo-mismatch")["detail"]
    assert redis.Redis.from_url(geo.env["HANDOFF_REDIS_URL"]).llen("dramatiq:geoprocessing") == 0
    deadline = time.monotonic() + 10
    while (folders := [p for p in geo.uploads.iterdir() if not p.name.startswith(".")]) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert folders == []
