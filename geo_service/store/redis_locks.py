"""The Redis :class:`~geo_service.store.base.Locker`: an upload lock every replica sees.

With an object store any replica and any worker may serve any upload, so the
lock cannot be a flock on one machine's disk. It is a Redis key with an
expiry, after the Redlock single-instance recipe and tusd's lock notes:

- ``handoff:lock:{<namespace>}:<id>`` holds ``<fence token>:<random owner>``
  with PX = ttl, taken only if absent (atomically with the token, in Lua);
  a killed holder's key simply expires, so it frees itself within the ttl.
- A renewer thread (a greenlet under gevent) extends every lock this locker
  holds every ttl/3 while its holder lives, and remembers a lock it found no
  longer ours: :meth:`RedisLocker.ensure_held` then raises :class:`LockLost`.
- Release and renewal compare the value first (compare-and-delete,
  compare-and-PEXPIRE), so a holder whose key expired never deletes or
  extends the next holder's.
- ``handoff:fence:{<namespace>}:<id>`` is a hash with the last fence token
  (``HINCRBY`` at every acquire) and when it was taken: the lock record the
  sweeper lists and forgets.
- ``handoff:stop:{<namespace>}:<id>`` is the take-over's "let go" request,
  with a short expiry so a waiter that died never leaves it behind.

The namespace (the store's URL) is a hash tag, so a Redis Cluster keeps a
store's keys in one slot, as the scripts, which touch several keys, need.

A Redis that does not answer raises :class:`BucketUnavailable` ("worth
retrying"), the store's one exception for a backend that is down; only the
renewer and the release swallow it (the key expires on its own).
"""

import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from geo_service.store.base import Busy, Locker, LockFile, LockLost, check_id
from geo_service.store.bucket import BucketUnavailable
from handoff.ids import is_upload_id

log = logging.getLogger(__name__)

#: Seconds a lock lives without renewal: how long a killed holder blocks its upload.
LOCK_TTL = 6.0
#: Seconds between tries while waiting for a lock.
POLL_INTERVAL = 0.05
#: Milliseconds a take-over's stop request lives unless the waiter sets it again.
STOP_TTL_MS = 2000

_UNANSWERED = (RedisConnectionError, RedisTimeoutError)

# KEYS: lock, fence record. ARGV: owner, ttl in ms, now. The fenced value, or nil if held.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('HINCRBY', KEYS[2], 'token', 1)
redis.call('HSET', KEYS[2], 'taken', ARGV[3])
local value = token .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'NX', 'PX', ARGV[2])
return value
"""
# KEYS: lock. ARGV: value, ttl in ms. 1 if the lock was ours and is extended.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lock. ARGV: value. 1 if the lock was ours and is gone.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class _Held:
    """A lock this locker holds: its value, and whether the renewer found it taken from us."""

    value: str
    lost: bool = False


def lock_key(namespace: str, upload_id: str) -> str:
    return _prefix("lock", namespace) + check_id(upload_id)


def fence_key(namespace: str, upload_id: str) -> str:
    return _prefix("fence", namespace) + check_id(upload_id)


def stop_key(namespace: str, upload_id: str) -> str:
    return _prefix("stop", namespace) + check_id(upload_id)


def _prefix(kind: str, namespace: str) -> str:
    """The start of a kind's keys; the namespace is the hash tag, so a store stays in one slot."""
    return f"handoff:{kind}:{{{namespace}}}:"


def fence_token(value: str | bytes) -> int:
    """The fence token of a lock key's value (``<token>:<owner>``)."""
    return int(_text(value).split(":", 1)[0])


class RedisLocker(Locker):
    """Upload locks as Redis keys with an expiry and a fence; see the module's docstring.

    ``client`` should have socket timeouts (a dead Redis must fail a
    request, not hang it). One locker serves a whole process: its threads
    (or greenlets) share it, and the renewer extends all their locks.
    """

    def __init__(self, client: redis.Redis, namespace: str, ttl: float = LOCK_TTL) -> None:
        self._client = client
        self._namespace = namespace
        self._ttl_ms = max(1, round(ttl * 1000))
        self._period = ttl / 3
        self._acquire_script = client.register_script(_ACQUIRE)
        self._extend_script = client.register_script(_EXTEND)
        self._release_script = client.register_script(_RELEASE)
        self._held: dict[str, _Held] = {}
        self._guard = threading.Lock()
        self._renewer: threading.Thread | None = None

    def lock(self, upload_id: str, timeout: float) -> AbstractContextManager[None]:
        return self._holding(upload_id, timeout, ask_to_stop=False)

    def take_over(self, upload_id: str, timeout: float) -> AbstractContextManager[None]:
        return self._holding(upload_id, timeout, ask_to_stop=True)

    def stop_requested(self, upload_id: str) -> bool:
        with _answered():
            return bool(self._client.exists(stop_key(self._namespace, upload_id)))

    def ensure_held(self, upload_id: str) -> None:
        """Raise :class:`LockLost` if the lock this process took is no longer its own.

        Checked and extended in one step, so the lock has a whole ttl ahead
        of the write that follows. An id this process never locked passes:
        a cancel writes its marker without the lock.
        """
        with self._guard:
            held = self._held.get(upload_id)
        if held is None:
            return
        if not held.lost:
            with _answered():
                held.lost = not self._extend(upload_id, held.value)
        if held.lost:
            raise LockLost(lock_key(self._namespace, upload_id))

    def lock_files(self) -> Iterator[LockFile]:
        """Each upload's lock record, with when its lock was last taken."""
        prefix = _prefix("fence", self._namespace)
        pattern = _glob_escape(prefix) + "*"
        with _answered():
            for key in self._client.scan_iter(match=pattern, count=500):
                upload_id = _text(key)[len(prefix):]
                taken = self._client.hget(key, "taken")
                if is_upload_id(upload_id) and taken is not None:
                    yield LockFile(upload_id, float(taken))

    def remove_lock_file(self, upload_id: str) -> None:
        """Forget the lock record of an upload that is gone; the caller holds the lock.

        Its fence starts again from 1 if the id is ever locked again, which
        only a new upload with a reused id could do.
        """
        with _answered():
            self._client.delete(fence_key(self._namespace, upload_id))

    # -- holding ----------------------------------------------------------------

    @contextmanager
    def _holding(self, upload_id: str, timeout: float, ask_to_stop: bool) -> Iterator[None]:
        value = self._acquire(upload_id, timeout, ask_to_stop)
        self._hold(upload_id, value)
        try:
            yield
        finally:
            self._let_go(upload_id, value)

    def _acquire(self, upload_id: str, timeout: float, ask_to_stop: bool) -> str:
        """Poll for the lock until ``timeout``; with ``ask_to_stop``, ask its holder to let go.

        The stop request is set again at each try (a third party that took
        the lock in between is asked too) and removed once the wait is over,
        so it never asks the next holder to stop.
        """
        deadline = time.monotonic() + timeout
        keys = [lock_key(self._namespace, upload_id), fence_key(self._namespace, upload_id)]
        stop = stop_key(self._namespace, upload_id)
        try:
            with _answered():
                while True:
                    value = self._acquire_script(
                        keys=keys, args=[secrets.token_hex(16), self._ttl_ms, repr(time.time())])
                    if value is not None:
                        return _text(value)
                    if time.monotonic() >= deadline:
                        raise Busy(keys[0])
                    if ask_to_stop:
                        self._client.set(stop, "1", px=STOP_TTL_MS)
                    time.sleep(POLL_INTERVAL)
        finally:
            if ask_to_stop:
                with suppress(*_UNANSWERED):  # it expires on its own
                    self._client.delete(stop)

    def _hold(self, upload_id: str, value: str) -> None:
        """Remember the lock for the renewer, starting it if it is not running (or forked away)."""
        with self._guard:
            self._held[upload_id] = _Held(value)
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(target=self._renew, daemon=True,
                                                 name="redis-lock-renewer")
                self._renewer.start()

    def _let_go(self, upload_id: str, value: str) -> None:
        with self._guard:
            self._held.pop(upload_id, None)
        try:
            self._release_script(keys=[lock_key(self._namespace, upload_id)], args=[value])
        except _UNANSWERED as exc:
            log.warning("lock not released, it expires on its own",
                        extra={"upload_id": upload_id, "error": str(exc)})

    def _extend(self, upload_id: str, value: str) -> bool:
        key = lock_key(self._namespace, upload_id)
        return bool(self._extend_script(keys=[key], args=[value, self._ttl_ms]))

    # -- the renewer ------------------------------------------------------------

    def _renew(self) -> None:
        """Extend every held lock each ttl/3; end when none is held (the next lock restarts it)."""
        while True:
            time.sleep(self._period)
            with self._guard:
                if not self._held:
                    self._renewer = None
                    return
                held = list(self._held.items())
            for upload_id, lock in held:
                if not lock.lost:
                    self._renew_one(upload_id, lock)

    def _renew_one(self, upload_id: str, lock: _Held) -> None:
        try:
            lock.lost = not self._extend(upload_id, lock.value)
        except _UNANSWERED as exc:
            log.warning("lock not renewed, trying again", extra={"upload_id": upload_id,
                                                                 "error": str(exc)})
            return
        if lock.lost:
            log.warning("lock lost: it expired or was taken", extra={"upload_id": upload_id})


@contextmanager
def _answered() -> Iterator[None]:
    """Turn Redis not answering into the store's "backend down, retry" exception."""
    try:
        yield
    except _UNANSWERED as exc:
        raise BucketUnavailable(f"the lock server did not answer: {exc}") from exc


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis SCAN pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
