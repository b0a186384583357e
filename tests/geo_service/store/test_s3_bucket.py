"""The Bucket contract against SeaweedFS's S3 gateway, the same one Azure's adapter passes."""

import pytest

from devstack import seaweedfs as weed
from geo_service.store.bucket import Bucket
from geo_service.store.s3 import S3Bucket
from tests.geo_service.store.bucket_contract import BucketContract
from tests.support.objectstores import ObjectServer, fresh_prefix

pytestmark = pytest.mark.integration


class TestS3Bucket(BucketContract):
    @pytest.fixture
    def bucket(self, seaweedfs: ObjectServer) -> Bucket:
        return S3Bucket(weed.client(seaweedfs.env), seaweedfs.bucket, f"handoff/{fresh_prefix()}")
