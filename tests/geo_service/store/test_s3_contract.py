"""The store contract, run against the object store on S3 (an embedded SeaweedFS)."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack import seaweedfs as weed
from geo_service.store import UploadStore
from geo_service.store.locks import FlockLocker
from geo_service.store.objects import ObjectStore
from geo_service.store.s3 import S3Bucket
from tests.geo_service.store.contract import ID, StoreContract, sealed
from tests.support.objectstores import ObjectServer, fresh_prefix

pytestmark = pytest.mark.integration


@pytest.fixture
def bucket(seaweedfs: ObjectServer, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh prefix in the tests' bucket; the environment points boto3 at the server."""
    for name, value in seaweedfs.env.items():
        monkeypatch.setenv(name, value)
    return S3Bucket(weed.client(seaweedfs.env), seaweedfs.bucket, fresh_prefix())


class TestObjectStoreOnS3(StoreContract):
    @pytest.fixture
    def location(self, bucket: S3Bucket) -> str:
        return bucket.describe()

    @pytest.fixture
    def store(self, bucket: S3Bucket, tmp_path: Path) -> Iterator[UploadStore]:
        yield ObjectStore(bucket, FlockLocker(tmp_path / "locks"))

    @pytest.fixture
    def crash_mid_removal(self) -> Callable[[ObjectStore], None]:
        def crash(store: ObjectStore) -> None:
            sealed(store)
            store.bucket.delete([f"{ID}/tenant.json"])

        return crash

    @pytest.fixture
    def add_stray(self) -> Callable[[ObjectStore], str]:
        def add(store: ObjectStore) -> str:
            store.bucket.put("notes/readme.txt", b"not an upload")
            return "notes"

        return add
