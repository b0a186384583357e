"""The upload store: where an upload's bytes and markers live, behind one interface.

Code outside this package uses :class:`UploadStore`'s methods only, on the
store :func:`open_store` gives; only the implementation knows a layout.
``HANDOFF_STORE_URL`` picks it: a folder (``file://``, the default) or a
bucket (``s3://``) or container (``az://``), whose locks are kept in Redis.
"""

import os
from pathlib import Path

import redis

from geo_service.store.azure import AzureBucket, azure_client
from geo_service.store.base import (
    AppendWriter,
    Busy,
    FileWriter,
    InvalidId,
    LockFile,
    LockLost,
    LockWait,
    Marker,
    StopReason,
    Timeline,
    UploadExists,
    UploadMissing,
    UploadStore,
    check_id,
)
from geo_service.store.filesystem import FileStore
from geo_service.store.locks import held
from geo_service.store.objects import ObjectStore
from geo_service.store.redis_locks import RedisLocker
from geo_service.store.s3 import S3Bucket, s3_client
from handoff.config import ConfigError, Settings, StoreUrl, load_settings, parse_store_url
from handoff.states import State

#: Seconds a lock's Redis may take to answer before the request fails instead of hanging.
REDIS_TIMEOUT = 5.0


def open_store(settings: Settings) -> UploadStore:
    """The configured store: a bucket, or else this replica's folder (``settings.store_root``)."""
    url = settings.store_url
    if url is None or not url.shared:
        return FileStore(settings.store_root)
    if url.scheme == "s3":
        return ObjectStore(_s3_bucket(url), _locker(settings))
    if url.scheme == "az":
        return ObjectStore(AzureBucket(azure_client(), url.location, url.prefix),
                           _locker(settings))
    raise ConfigError(f"no store is built for {url.scheme}:// here")


def open_store_at(location: str | Path) -> UploadStore:
    """The store at ``location`` (a folder or a store URL), for tools given a location.

    A bucket's endpoint, credentials and the Redis of its locks come from the
    environment, as the services read them: a child process opens the same
    store from the location alone.
    """
    text = str(location)
    if "://" not in text:
        return FileStore(Path(text))
    url = parse_store_url(text)
    if not url.shared:
        return FileStore(Path(url.location))
    return open_store(load_settings({**os.environ, "HANDOFF_STORE_URL": text}))


def _s3_bucket(url: StoreUrl) -> S3Bucket:
    return S3Bucket(s3_client(), url.location, url.prefix)


def _locker(settings: Settings) -> RedisLocker:
    """Locks in the Redis of the job queue, named after the store so two stores never meet."""
    if not settings.redis_url:
        raise ConfigError(f"a store at {settings.store_url} keeps its locks in Redis: "
                          "set HANDOFF_REDIS_URL")
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=REDIS_TIMEOUT,
                                  socket_connect_timeout=REDIS_TIMEOUT)
    return RedisLocker(client, str(settings.store_url))


__all__ = ["AppendWriter", "Busy", "FileStore", "FileWriter", "InvalidId", "LockFile", "LockLost",
           "LockWait", "Marker", "ObjectStore", "State", "StopReason", "Timeline", "UploadExists",
           "UploadMissing", "UploadStore", "check_id", "held", "open_store", "open_store_at"]
