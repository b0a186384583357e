"""The store contract, run against the object store on Azure Blob (Azurite) with Redis locks."""

from collections.abc import Callable

import pytest

from geo_service.store import ObjectStore, UploadStore, open_store_at
from geo_service.store.azure import AzureBucket
from tests.geo_service.store.contract import ID, StoreContract, sealed

pytestmark = pytest.mark.integration


class TestObjectStoreOnAzure(StoreContract):
    @pytest.fixture
    def location(self, az_store_url: str) -> str:
        return az_store_url

    @pytest.fixture
    def store(self, location: str) -> UploadStore:
        opened = open_store_at(location)
        assert isinstance(opened, ObjectStore) and isinstance(opened.bucket, AzureBucket)
        return opened

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
