"""The sweep against an object store on S3 (SeaweedFS) and Azure (Azurite), locks in Redis."""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from geo_service.store import ObjectStore, open_store_at
from handoff.ids import new_upload_id
from handoff_gc.rules import Ttls
from handoff_gc.sweep import sweep
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
TTLS = Ttls(orphan=100.0, partial=200.0, retention=1000.0)


@pytest.fixture
def store(object_store_url: str) -> ObjectStore:
    opened = open_store_at(object_store_url)
    assert isinstance(opened, ObjectStore)
    return opened


def test_an_abandoned_writers_part_upload_is_aborted_by_a_sweep(store: ObjectStore) -> None:
    store.create(ID, "alice")
    writer = store.open_writer(ID, 0)  # its writer is never heard of again
    writer.write(os.urandom(20 * 1024 * 1024))
    # Azure lists the write once its first part has arrived.
    assert eventually(lambda: list(store.bucket.pending("")) != [])
    kept = sweep(store, TTLS)
    assert (kept.aborted_writes, kept.deletions) == (0, [])
    assert [write.key for write in store.bucket.pending("")] == [f"{ID}/files/0"]
    report = sweep(store, TTLS, clock=lambda: time.time() + TTLS.partial + 1)
    assert report.aborted_writes == 1
    assert list(store.bucket.pending("")) == []
    assert [d.upload_id for d in report.deletions] == [ID]
    assert list(store.bucket.listing(f"{ID}/")) == []


def test_several_sweepers_at_once_remove_each_upload_once(store: ObjectStore) -> None:
    partials = [new_upload_id() for _ in range(3)]
    orphans = [new_upload_id() for _ in range(3)]
    for upload_id in partials:
        store.create(upload_id, "alice")
        store.open_writer(upload_id, 0).write(os.urandom(6 * 1024 * 1024))
    for upload_id in orphans:
        store.create(upload_id, "alice")
        with store.lock(upload_id):
            with store.open_writer(upload_id, 0) as writer:
                writer.write(b"never processed")
                writer.commit()
            store.seal(upload_id, {"files": [{"name": "a", "size": 15}]})
    later = time.time() + TTLS.partial + 1
    with ThreadPoolExecutor(3) as pool:
        reports = list(pool.map(lambda _: sweep(store, TTLS, clock=lambda: later), range(3)))

    deleted = [d.upload_id for report in reports for d in report.deletions]
    assert sorted(deleted) == sorted(partials + orphans)
    assert sum(report.errors for report in reports) == 0
    assert list(store.upload_ids()) == []
    assert list(store.bucket.listing("")) == []
    assert list(store.bucket.pending("")) == []
