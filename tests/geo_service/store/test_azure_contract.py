"""The store contract, run against the object store on Azure Blob (Azurite) with Redis locks."""

import pytest

from geo_service.store import UploadStore
from geo_service.store.azure import AzureBucket
from tests.geo_service.store.object_contract import ObjectStoreContract

pytestmark = pytest.mark.integration


class TestObjectStoreOnAzure(ObjectStoreContract):
    @pytest.fixture
    def location(self, az_store_url: str) -> str:
        return az_store_url

    def test_the_store_is_on_azure(self, store: UploadStore) -> None:
        assert isinstance(getattr(store, "bucket", None), AzureBucket)
