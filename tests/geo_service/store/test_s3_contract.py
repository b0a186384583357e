"""The store contract, run against the object store on S3 (an embedded SeaweedFS)."""

import pytest

from geo_service.store import UploadStore
from geo_service.store.s3 import S3Bucket
from tests.geo_service.store.object_contract import ObjectStoreContract

pytestmark = pytest.mark.integration


class TestObjectStoreOnS3(ObjectStoreContract):
    @pytest.fixture
    def location(self, s3_store_url: str) -> str:
        return s3_store_url

    def test_the_store_is_on_s3(self, store: UploadStore) -> None:
        assert isinstance(getattr(store, "bucket", None), S3Bucket)
