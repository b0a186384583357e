"""RedisLocker against a real valkey: what replicas sharing one Redis rely on.

Holders in other processes are real processes, killed with SIGKILL where a
crash is the point; no assertion is about how long anything took.
"""

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import redis

from devstack.processes import free_port
from geo_service.store.base import Busy, LockLost
from geo_service.store.bucket import BucketUnavailable
from geo_service.store.redis_locks import RedisLocker, fence_token, lock_key, stop_key
from handoff.ids import new_upload_id
from tests.support.processes import Processes

pytestmark = pytest.mark.integration

SHORT_TTL = 1.0

_HOLD = """
import sys, time
import redis
from geo_service.store.redis_locks import RedisLocker
locker = RedisLocker(redis.Redis.from_url(sys.argv[1]), sys.argv[2], ttl=float(sys.argv[4]))
with locker.lock(sys.argv[3], timeout=0):
    print("locked", flush=True)
    time.sleep(300)
"""

# Under gevent the renewer is a greenlet: the lock must outlive several ttls all the same.
_GEVENT_HOLD = """
from gevent import monkey
monkey.patch_all()
import sys, time
import redis
from geo_service.store.base import Busy
from geo_service.store.redis_locks import RedisLocker
client = redis.Redis.from_url(sys.argv[1])
locker = RedisLocker(client, sys.argv[2], ttl=0.3)
with locker.lock(sys.argv[3], timeout=0):
    time.sleep(1.5)
    locker.ensure_held(sys.argv[3])
    try:
        with RedisLocker(client, sys.argv[2]).lock(sys.argv[3], timeout=0):
            print("taken from a live holder", flush=True)
    except Busy:
        print("held", flush=True)
"""


@pytest.fixture
def client(valkey: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(valkey, socket_timeout=5, socket_connect_timeout=5)
    yield connection
    connection.close()


@pytest.fixture
def namespace() -> str:
    """A namespace of the test's own, shaped like a store URL, ending in a glob character."""
    return f"s3://bucket/prefix-{new_upload_id()}?"


def _elsewhere(namespace: str) -> str:
    """Another store's namespace, one that ``namespace`` taken as a glob would match."""
    return namespace[:-1] + "2"


@pytest.fixture
def locker(client: redis.Redis, namespace: str) -> RedisLocker:
    return RedisLocker(client, namespace, ttl=SHORT_TTL)


def _other(client: redis.Redis, namespace: str) -> RedisLocker:
    """Another replica's locker on the same Redis and store."""
    return RedisLocker(client, namespace, ttl=SHORT_TTL)


def _hold(processes: Processes, valkey: str, namespace: str, upload_id: str
          ) -> subprocess.Popen[str]:
    """A process holding ``upload_id``'s lock; returns once it holds it."""
    holder = processes.popen([sys.executable, "-c", _HOLD, valkey, namespace, upload_id,
                              str(SHORT_TTL)],
                             stop_signal=signal.SIGKILL, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_one_holder_at_a_time(client: redis.Redis, namespace: str, locker: RedisLocker) -> None:
    upload_id = new_upload_id()
    other = _other(client, namespace)
    with locker.lock(upload_id, timeout=0):
        with pytest.raises(Busy), other.lock(upload_id, timeout=0):
            pass
        with pytest.raises(Busy), locker.lock(upload_id, timeout=0):
            pass
    with other.lock(upload_id, timeout=0):
        assert client.exists(lock_key(namespace, upload_id))
    assert not client.exists(lock_key(namespace, upload_id))


def test_busy_after_the_timeout(client: redis.Redis, namespace: str, locker: RedisLocker) -> None:
    upload_id = new_upload_id()
    with (locker.lock(upload_id, timeout=0), pytest.raises(Busy),
          _other(client, namespace).lock(upload_id, timeout=0.3)):
        pass


def test_another_namespace_does_not_conflict(client: redis.Redis, namespace: str,
                                             locker: RedisLocker) -> None:
    upload_id = new_upload_id()
    elsewhere = _elsewhere(namespace)
    with locker.lock(upload_id, timeout=0), _other(client, elsewhere).lock(upload_id, timeout=0):
        assert client.exists(lock_key(elsewhere, upload_id))


def test_a_killed_holders_lock_frees_itself(processes: Processes, valkey: str, namespace: str,
                                            locker: RedisLocker) -> None:
    upload_id = new_upload_id()
    holder = _hold(processes, valkey, namespace, upload_id)
    with pytest.raises(Busy), locker.lock(upload_id, timeout=0):
        pass
    holder.kill()
    holder.wait()
    with locker.lock(upload_id, timeout=10 * SHORT_TTL):
        locker.ensure_held(upload_id)


def test_a_live_holder_keeps_its_lock_past_several_ttls(client: redis.Redis, namespace: str,
                                                       locker: RedisLocker) -> None:
    upload_id = new_upload_id()
    with locker.lock(upload_id, timeout=0):
        time.sleep(4 * SHORT_TTL)
        locker.ensure_held(upload_id)
        with pytest.raises(Busy), _other(client, namespace).lock(upload_id, timeout=0):
            pass


def test_the_renewer_works_under_gevent(processes: Processes, valkey: str,
                                        namespace: str) -> None:
    held = processes.popen([sys.executable, "-c", _GEVENT_HOLD, valkey, namespace,
                            new_upload_id()], stdout=subprocess.PIPE, text=True)
    out, _ = held.communicate(timeout=60)
    assert (held.returncode, out.strip()) == (0, "held")


def test_fence_tokens_increase(client: redis.Redis, namespace: str, locker: RedisLocker) -> None:
    upload_id = new_upload_id()
    tokens = []
    for taker in (locker, _other(client, namespace), locker):
        with taker.lock(upload_id, timeout=0):
            tokens.append(fence_token(client.get(lock_key(namespace, upload_id)) or b""))
    assert tokens[0] < tokens[1] < tokens[2]


def test_a_holder_whose_lock_was_taken_loses_it(client: redis.Redis, namespace: str,
                                                locker: RedisLocker) -> None:
    """An expiry, simulated: the key goes, another takes it; the first must not write or delete."""
    upload_id = new_upload_id()
    key = lock_key(namespace, upload_id)
    with ExitStack() as theirs:
        with locker.lock(upload_id, timeout=0):
            client.delete(key)
            theirs.enter_context(_other(client, namespace).lock(upload_id, timeout=0))
            their_value = client.get(key)
            with pytest.raises(LockLost):
                locker.ensure_held(upload_id)
        assert their_value is not None
        assert client.get(key) == their_value


def test_ensure_held_passes_for_an_id_never_locked(locker: RedisLocker) -> None:
    locker.ensure_held(new_upload_id())


def test_take_over_asks_the_holder_and_gets_the_lock(client: redis.Redis, namespace: str,
                                                     locker: RedisLocker) -> None:
    upload_id = new_upload_id()
    asked = threading.Event()
    locked = threading.Event()

    def holder() -> None:
        with locker.lock(upload_id, timeout=0):
            locked.set()
            while not locker.stop_requested(upload_id):
                time.sleep(0.01)
            asked.set()

    thread = threading.Thread(target=holder)
    thread.start()
    locked.wait(10)
    with _other(client, namespace).take_over(upload_id, timeout=30):
        assert asked.is_set()
        assert not client.exists(stop_key(namespace, upload_id))
    thread.join(10)


def test_take_over_of_a_holder_that_stays_is_busy(client: redis.Redis, namespace: str,
                                                  locker: RedisLocker) -> None:
    upload_id = new_upload_id()
    with locker.lock(upload_id, timeout=0):
        with pytest.raises(Busy), _other(client, namespace).take_over(upload_id, timeout=0.3):
            pass
        assert not locker.stop_requested(upload_id)
    assert not client.exists(stop_key(namespace, upload_id))


def test_lock_files_lists_taken_locks_with_times(client: redis.Redis, namespace: str,
                                                 locker: RedisLocker) -> None:
    first, second = new_upload_id(), new_upload_id()
    before = time.time()
    for upload_id in (first, second):
        with locker.lock(upload_id, timeout=0):
            pass
    with _other(client, _elsewhere(namespace)).lock(new_upload_id(), timeout=0):
        pass
    after = time.time()
    records = {record.upload_id: record.mtime for record in locker.lock_files()}
    assert set(records) == {first, second}
    assert all(before <= taken <= after for taken in records.values())
    locker.remove_lock_file(first)
    assert [record.upload_id for record in locker.lock_files()] == [second]


def test_an_unreachable_redis_is_the_stores_unavailable() -> None:
    dead = redis.Redis(port=free_port(), socket_timeout=1, socket_connect_timeout=1)
    locker = RedisLocker(dead, "s3://bucket")
    with pytest.raises(BucketUnavailable), locker.lock(new_upload_id(), timeout=0):
        pass
