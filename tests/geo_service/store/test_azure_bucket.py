"""The Bucket contract against Azurite, and what is Azure's own: credentials, block ids, errors."""

import pytest
from azure.identity import DefaultAzureCredential

from devstack import processes
from devstack.azurite import ACCOUNT, KEY, connection_string
from geo_service.store.azure import AzureBucket, azure_client
from geo_service.store.bucket import Bucket, BucketUnavailable
from tests.geo_service.store.bucket_contract import BucketContract, pattern
from tests.support.objectstores import ObjectServer, fresh_prefix

pytestmark = pytest.mark.integration


class TestAzureBucket(BucketContract):
    @pytest.fixture
    def bucket(self, azurite: ObjectServer) -> Bucket:
        return bucket_in(azurite, f"handoff/{fresh_prefix()}")


def bucket_in(server: ObjectServer, prefix: str) -> AzureBucket:
    return AzureBucket(azure_client(server.env), server.bucket, prefix)


def test_buckets_with_other_prefixes_never_see_each_other(azurite: ObjectServer):
    prefix = fresh_prefix()
    one = bucket_in(azurite, prefix)
    other = bucket_in(azurite, f"{prefix}-other")
    one.put("k", b"1")
    handle = one.begin("big")
    one.put_part("big", handle, 1, b"part")

    assert other.get("k") is None
    assert list(other.listing("")) == []
    assert list(other.folders("")) == []
    assert list(other.pending("")) == []
    assert [write.key for write in one.pending("")] == ["big"]
    assert [blob.name for blob in one.container.list_blobs(name_starts_with=prefix)
            ] == [f"{prefix}/k"]


def test_block_ids_are_one_length_and_carry_the_writers_stem(azurite: ObjectServer):
    bucket = bucket_in(azurite, fresh_prefix())
    handle = bucket.begin("f", {"written": "1.5"})
    parts = [bucket.put_part("f", handle, number, b"x") for number in (1, 2, 10, 50_000)]

    assert len({len(part.tag) for part in parts}) == 1
    stems = {part.tag.rsplit("-", 1)[0] for part in parts}
    assert len(stems) == 1
    assert handle.startswith(stems.pop())
    assert [write.handle for write in bucket.pending("")] == [handle.split(".")[0]]


def test_a_handle_from_pending_aborts_the_write(azurite: ObjectServer):
    """The sweeper aborts by what pending lists, not by the writer's own handle."""
    bucket = bucket_in(azurite, fresh_prefix())
    bucket.put_part("f", bucket.begin("f", {"written": "1"}), 1, b"x")

    for write in bucket.pending(""):
        bucket.abort(write.key, write.handle)

    assert list(bucket.pending("")) == []
    assert bucket.head("f") is None


def test_copy_part_needs_no_public_access_to_the_source(azurite: ObjectServer):
    """The source URL is signed: the container stays private (Azurite checks the SAS)."""
    bucket = bucket_in(azurite, fresh_prefix())
    bucket.put("src", pattern(100))
    access = bucket.container.get_container_access_policy()

    handle = bucket.begin("dst")
    bucket.complete("dst", handle, [bucket.copy_part("dst", handle, 1, "src", 10, 20)])

    assert access["public_access"] is None
    assert bucket.get("dst") == pattern(100)[10:30]


def test_an_unreachable_service_is_unavailable(azurite: ObjectServer):
    port = processes.free_port()
    bucket = AzureBucket(azure_client({"AZURE_STORAGE_CONNECTION_STRING":
                                       connection_string(port)}), "nowhere")

    with pytest.raises(BucketUnavailable):
        bucket.head("k")
    with pytest.raises(BucketUnavailable):
        list(bucket.listing(""))
    problem = bucket.problem()
    assert problem is not None and "cannot be reached" in problem


def test_a_missing_container_is_the_problem(azurite: ObjectServer):
    bucket = AzureBucket(azure_client(azurite.env), "never-made", "p")

    assert bucket.describe() == "az://never-made/p"
    assert bucket.problem() == "az://never-made/p: the container does not exist"
    assert bucket_in(azurite, "p").problem() is None


def test_credentials_come_from_the_sdks_variables():
    by_string = azure_client({"AZURE_STORAGE_CONNECTION_STRING": connection_string(10000)})
    by_key = azure_client({"AZURE_STORAGE_ACCOUNT": ACCOUNT, "AZURE_STORAGE_KEY": KEY})
    by_identity = azure_client({"AZURE_STORAGE_ACCOUNT": ACCOUNT})

    assert by_string.url == f"http://127.0.0.1:10000/{ACCOUNT}/"
    assert getattr(by_string.credential, "account_key", None) == KEY
    assert by_key.url == f"https://{ACCOUNT}.blob.core.windows.net/"
    assert getattr(by_key.credential, "account_key", None) == KEY
    assert isinstance(by_identity.credential, DefaultAzureCredential)
    with pytest.raises(ValueError, match="AZURE_STORAGE_ACCOUNT"):
        azure_client({})


def test_the_client_reads_in_bounded_chunks(azurite: ObjectServer):
    bucket = bucket_in(azurite, fresh_prefix())
    data = pattern(9 * 1024 * 1024)
    bucket.put("big", data)

    chunks = list(bucket.read("big"))

    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= 4 * 1024 * 1024
