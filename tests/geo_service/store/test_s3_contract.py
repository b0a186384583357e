"""The store contract, run against the object store on S3 (an embedded SeaweedFS)."""

from collections.abc import Callable

import pytest

from geo_service.store import ObjectStore, UploadStore, open_store_at
from tests.geo_service.store.contract import ID, StoreContract, sealed
from tests.support.objectstores import ObjectServer, fresh_prefix

pytestmark = pytest.mark.integration


class TestObjectStoreOnS3(StoreContract):
    @pytest.fixture
    def location(self, seaweedfs: ObjectServer, valkey: str,
                 monkeypatch: pytest.MonkeyPatch) -> str:
        """A fresh prefix; the environment (inherited by lock holders) names server and Redis."""
        for name, value in {**seaweedfs.env, "HANDOFF_REDIS_URL": valkey}.items():
            monkeypatch.setenv(name, value)
        return seaweedfs.url("s3", fresh_prefix())

    @pytest.fixture
    def store(self, location: str) -> UploadStore:
        return open_store_at(location)

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
