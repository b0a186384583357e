"""PATCH /uploads/<id>: bytes appended at the upload's offset, sealed with the last one."""

from flask.testing import FlaskClient

from geo_service.store import UploadStore
from tests.geo_service.http.tus import (
    AUTH,
    MAX_SIZE,
    UPLOAD_ID,
    checksum,
    create,
    offset,
    patch,
    problem,
    sha256,
)
from tests.geo_service.store import disk
from tests.support.multipart_bodies import content_type, upload_body

MULTIPART_ID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"


def test_a_chunk_is_appended_and_its_offset_answered(client: FlaskClient, store: UploadStore):
    create(client, length=10)
    answer = patch(client, 0, b"01234")
    assert answer.status_code == 200
    assert answer.get_json()["offset"] == 5 and answer.get_json()["state"] == "receiving"
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == b"01234"
    assert store.status(UPLOAD_ID)["offset"] == 5


def test_the_last_byte_seals_the_upload_as_multipart_does(client: FlaskClient,
                                                          store: UploadStore):
    create(client, length=10)
    patch(client, 0, b"01234")
    answer = patch(client, 5, b"56789")
    assert answer.get_json()["state"] == "complete" and answer.get_json()["expires"] is None
    manifest = store.status(UPLOAD_ID)["manifest"]
    assert manifest["files"] == [{"path": f"{disk.FILES}/0", "field": "file", "name": "a.bin",
                                  "content_type": "application/octet-stream", "size": 10,
                                  "sha256": sha256(b"0123456789")}]
    assert (manifest["tenant"], manifest["purpose"], manifest["metadata"]) == (
        "alice", "raw", {"project": "p"})
    client.post(f"/uploads/{MULTIPART_ID}", data=upload_body([("m.txt", b"m")]),
                content_type=content_type(), headers=AUTH)
    assert set(manifest) == set(store.status(MULTIPART_ID)["manifest"])


def test_an_offset_other_than_the_uploads_is_409_with_the_offset(client: FlaskClient,
                                                                 store: UploadStore):
    create(client, length=10)
    patch(client, 0, b"01234")
    for stale in (0, 4, 6):
        answer = patch(client, stale, b"xxxxx")
        assert problem(answer, 409, "offset-mismatch")["offset"] == 5
        assert answer.headers["Upload-Offset"] == "5"
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == b"01234"


def test_a_chunk_matching_its_checksum_is_appended(client: FlaskClient):
    create(client, length=10)
    for algorithm in ("sha1", "sha256", "md5"):
        client.delete(f"/uploads/{UPLOAD_ID}", headers=AUTH)
        create(client, length=10)
        answer = patch(client, 0, b"01234", headers={"Upload-Checksum": checksum(b"01234",
                                                                                algorithm)})
        assert answer.get_json()["offset"] == 5


def test_a_chunk_that_does_not_match_its_checksum_is_460_and_changes_nothing(
        client: FlaskClient, store: UploadStore):
    create(client, length=10)
    patch(client, 0, b"01234")
    before = store.progress(UPLOAD_ID)
    answer = patch(client, 5, b"56789", headers={"Upload-Checksum": checksum(b"5678X")})
    problem(answer, 460, "checksum-mismatch")
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == b"01234"
    after = store.progress(UPLOAD_ID)
    assert after is not None and before is not None
    assert (after["offset"], after["sha256_state"]) == (before["offset"], before["sha256_state"])
    assert offset(client).get_json()["offset"] == 5
    assert patch(client, 5, b"56789").get_json()["state"] == "complete"
    assert store.status(UPLOAD_ID)["manifest"]["files"][0]["sha256"] == sha256(b"0123456789")


def test_a_deferred_length_is_declared_by_a_later_chunk(client: FlaskClient, store: UploadStore):
    create(client, length=None)
    assert patch(client, 0, b"0123").get_json()["length"] is None
    answer = patch(client, 4, b"4567", headers={"Upload-Length": "8"})
    assert answer.get_json()["length"] == 8 and answer.get_json()["state"] == "complete"
    assert store.status(UPLOAD_ID)["manifest"]["size"] == 8


def test_a_declared_length_cannot_change_or_fall_short(client: FlaskClient):
    create(client, length=10)
    problem(patch(client, 0, b"0", headers={"Upload-Length": "11"}), 400, "bad-request")
    client.delete(f"/uploads/{UPLOAD_ID}", headers=AUTH)
    create(client, length=None)
    patch(client, 0, b"01234")
    problem(patch(client, 5, b"5", headers={"Upload-Length": "4"}), 400, "bad-request")
    problem(patch(client, 5, b"5", headers={"Upload-Length": str(MAX_SIZE + 1)}), 400,
            "bad-request")


def test_a_chunk_past_the_length_is_refused_and_nothing_of_it_kept(client: FlaskClient,
                                                                   store: UploadStore):
    create(client, length=4)
    problem(patch(client, 0, b"01234"), 413, "too-large")
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == b""


def test_a_deferred_length_upload_stops_at_the_size_limit(client: FlaskClient):
    create(client, length=None)
    problem(patch(client, 0, b"x" * (MAX_SIZE + 1)), 413, "too-large")


def test_a_retried_last_chunk_finds_the_upload_sealed(client: FlaskClient):
    create(client, length=2)
    patch(client, 0, b"01")
    assert patch(client, 2, b"").get_json()["state"] == "complete"
    assert problem(patch(client, 0, b"01"), 409, "offset-mismatch")["offset"] == 2


def test_an_append_needs_the_offset_media_type_and_a_valid_offset(client: FlaskClient):
    create(client)
    answer = client.patch(f"/uploads/{UPLOAD_ID}", data=b"x",
                          headers={**AUTH, "Upload-Offset": "0",
                                   "Content-Type": "application/octet-stream"})
    problem(answer, 415, "unsupported-media-type")
    problem(patch(client, -1, b"x"), 400, "bad-request")
    problem(patch(client, 0, b"x", headers={"Upload-Checksum": "crc32 AAAA"}), 400, "bad-request")


def test_a_multipart_upload_takes_no_appends(client: FlaskClient):
    client.post(f"/uploads/{MULTIPART_ID}", data=upload_body([("m.txt", b"m")]),
                content_type=content_type(), headers=AUTH)
    problem(patch(client, 1, b"x", upload_id=MULTIPART_ID), 404, "not-found")
    problem(patch(client, 0, b"x"), 404, "not-found")


def test_a_cancelled_upload_is_removed_by_its_writer(client: FlaskClient, store: UploadStore):
    create(client, length=10)
    store.mark_cancelled(UPLOAD_ID)
    problem(patch(client, 0, b"01234"), 409, "cancelled")
    assert not store.exists(UPLOAD_ID)
