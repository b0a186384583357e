"""The sweep against an object store on S3 (an embedded SeaweedFS), locks in Redis."""

import os
import time

import pytest

from geo_service.store import ObjectStore, open_store_at
from handoff_gc.rules import Ttls
from handoff_gc.sweep import sweep
from tests.support.objectstores import ObjectServer, fresh_prefix

pytestmark = pytest.mark.integration

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
TTLS = Ttls(orphan=100.0, partial=200.0, retention=1000.0)


@pytest.fixture
def store(seaweedfs: ObjectServer, valkey: str, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    for name, value in {**seaweedfs.env, "HANDOFF_REDIS_URL": valkey}.items():
        monkeypatch.setenv(name, value)
    opened = open_store_at(seaweedfs.url("s3", fresh_prefix()))
    assert isinstance(opened, ObjectStore)
    return opened


def test_an_abandoned_writers_part_upload_is_aborted_by_a_sweep(store: ObjectStore) -> None:
    store.create(ID, "alice")
    writer = store.open_writer(ID, 0)  # its writer is never heard of again
    writer.write(os.urandom(20 * 1024 * 1024))
    kept = sweep(store, TTLS)
    assert (kept.aborted_writes, kept.deletions) == (0, [])
    assert [write.key for write in store.bucket.pending("")] == [f"{ID}/files/0"]
    report = sweep(store, TTLS, clock=lambda: time.time() + TTLS.partial + 1)
    assert report.aborted_writes == 1
    assert list(store.bucket.pending("")) == []
