"""PATCH /v1/uploads/<id>: bytes streamed to the geo service at the upload's offset."""

import hashlib

from tests.api_service.tus import BOB, TUS, location, patch, problem
from tests.api_service.tus.conftest import Api
from tests.geo_service.http.tus import checksum


def test_each_patch_answers_the_new_offset(api: Api):
    url = location(api.client, length=10)
    answer = patch(api.client, url, 0, b"01234")
    assert answer.status_code == 204
    assert answer.headers["Upload-Offset"] == "5"
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    assert answer.headers["Upload-Expires"].endswith(" GMT")
    assert api.queue.jobs == []


def test_the_last_patch_answers_once_the_upload_is_queued(api: Api):
    url = location(api.client, length=10)
    patch(api.client, url, 0, b"01234")
    answer = patch(api.client, url, 5, b"56789")
    upload_id = url.rsplit("/", 1)[-1]
    assert answer.status_code == 204 and "Upload-Expires" not in answer.headers
    assert api.queue.jobs == [(upload_id, "raw", {})]
    status = api.store.status(upload_id)
    assert status["state"] == "queued"
    assert status["manifest"]["files"][0]["sha256"] == hashlib.sha256(b"0123456789").hexdigest()


def test_a_stale_offset_is_409_with_the_current_one(api: Api):
    url = location(api.client, length=10)
    patch(api.client, url, 0, b"01234")
    answer = patch(api.client, url, 2, b"23456")
    assert problem(answer, 409, "offset-mismatch")["offset"] == 5
    assert answer.headers["Upload-Offset"] == "5"


def test_a_checksum_mismatch_is_460_and_the_offset_stays(api: Api):
    url = location(api.client, length=10)
    answer = patch(api.client, url, 0, b"01234", {"Upload-Checksum": checksum(b"other")})
    problem(answer, 460, "checksum-mismatch")
    answer = patch(api.client, url, 0, b"01234", {"Upload-Checksum": checksum(b"01234",
                                                                              "sha256")})
    assert answer.headers["Upload-Offset"] == "5"


def test_a_deferred_length_is_declared_on_a_patch(api: Api):
    url = location(api.client, length=None)
    patch(api.client, url, 0, b"012")
    patch(api.client, url, 3, b"345", {"Upload-Length": "6"})
    assert len(api.queue.jobs) == 1


def test_malformed_headers_are_400_before_a_byte_is_relayed(api: Api):
    url = location(api.client, length=10)
    for headers in ({"Upload-Offset": "x"}, {"Upload-Checksum": "crc32 AAAA"},
                    {"Upload-Length": "ten"}):
        problem(patch(api.client, url, 0, b"01", headers), 400, "bad-request")
    assert api.store.status(url.rsplit("/", 1)[-1])["offset"] == 0


def test_a_patch_needs_the_offset_media_type(api: Api):
    url = location(api.client)
    answer = api.client.patch(url, data=b"x", headers={**TUS, "Upload-Offset": "0",
                                                       "Content-Type": "text/plain",
                                                       "Authorization": "Bearer alice-token"})
    problem(answer, 415, "unsupported-media-type")


def test_a_patch_needs_tus_resumable(api: Api):
    url = location(api.client)
    answer = api.client.patch(url, data=b"x", headers={"Authorization": "Bearer alice-token",
                                                       "Upload-Offset": "0"})
    assert answer.status_code == 412 and answer.headers["Tus-Version"] == "1.0.0"


def test_past_the_size_limit_is_413_before_a_byte(api: Api):
    url = location(api.client, length=None)
    problem(patch(api.client, url, 0, b"x" * (1024 * 1024 + 1)), 413, "too-large")


def test_another_tenants_upload_is_404(api: Api):
    url = location(api.client)
    answer = api.client.patch(url, data=b"x", headers={
        **BOB, **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    problem(answer, 404, "not-found")
    assert api.store.status(url.rsplit("/", 1)[-1])["offset"] == 0


def test_a_multipart_upload_takes_no_patch(api: Api):
    problem(patch(api.client, "/v1/uploads/4a5b6c7d-1e2f-4a3b-8c9d-0e1f2a3b4c5d", 0, b"x"),
            404, "not-found")
