"""GET /v1/uploads/<id> of a tus upload: the status document, with its progress while receiving."""

from tests.api_service.tus import ALICE, location, patch
from tests.api_service.tus.conftest import Api


def test_a_receiving_upload_says_how_far_it_got(api: Api):
    url = location(api.client, length=10)
    patch(api.client, url, 0, b"0123")
    status = api.client.get(url, headers=ALICE).get_json()
    assert (status["status"], status["offset"], status["length"]) == ("receiving", 4, 10)
    assert status["purpose"] == "raw" and status["files"] == []


def test_a_queued_upload_reads_as_a_multipart_one(api: Api):
    url = location(api.client, length=2)
    patch(api.client, url, 0, b"01")
    status = api.client.get(url, headers=ALICE).get_json()
    assert status["status"] == "queued" and "offset" not in status
    assert status["files"][0]["size"] == 2 and status["files"][0]["name"] == "plan.bin"
