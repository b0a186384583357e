"""GET /uploads/<id>/offset: the durable offset to resume from, repaired after a crash."""

import base64
import json

from flask.testing import FlaskClient
from rehashes import PySha256

from geo_service.store import UploadStore
from tests.geo_service.http.tus import (
    AUTH,
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


def _progress(store: UploadStore) -> dict:
    return json.loads((disk.folder(store, UPLOAD_ID) / "progress.json").read_text())


def _write_progress(store: UploadStore, record: dict) -> None:
    (disk.folder(store, UPLOAD_ID) / "progress.json").write_text(json.dumps(record))


def test_the_offset_is_what_was_appended(client: FlaskClient):
    create(client, length=10)
    assert offset(client).get_json()["offset"] == 0
    patch(client, 0, b"0123")
    document = offset(client).get_json()
    assert (document["offset"], document["length"], document["state"]) == (4, 10, "receiving")
    assert document["filename"] == "a.bin" and document["purpose"] == "raw"


def test_a_sealed_upload_is_at_its_length(client: FlaskClient):
    create(client, length=2)
    patch(client, 0, b"01")
    document = offset(client).get_json()
    assert (document["offset"], document["state"], document["expires"]) == (2, "complete", None)


def test_an_unknown_or_unfinished_multipart_upload_has_no_offset(client: FlaskClient,
                                                                 store: UploadStore):
    problem(offset(client), 404, "not-found")
    store.create(UPLOAD_ID, "alice")  # a multipart body still arriving: nothing to resume
    problem(offset(client), 404, "not-found")


def test_a_sealed_multipart_upload_is_complete_at_its_files_total(client: FlaskClient):
    other = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
    client.post(f"/uploads/{other}", data=upload_body([("m.txt", b"m"), ("n.txt", b"no")]),
                content_type=content_type(), headers=AUTH)
    document = offset(client, other).get_json()
    assert {key: document[key] for key in ("state", "offset", "length", "filename", "expires",
                                           "partial")} == {
        "state": "complete", "offset": 3, "length": 3, "filename": None, "expires": None,
        "partial": False}


def test_bytes_written_after_the_last_record_count_once_recovered(client: FlaskClient,
                                                                  store: UploadStore):
    """A writer killed between its write and its record left a longer file: its tail counts."""
    create(client, length=8)
    patch(client, 0, b"0123")
    with open(disk.file_path(store, UPLOAD_ID, 0), "ab") as handle:
        handle.write(b"45")
    assert offset(client).get_json()["offset"] == 6
    assert _progress(store)["offset"] == 6
    patch(client, 6, b"67")
    assert store.status(UPLOAD_ID)["manifest"]["files"][0]["sha256"] == sha256(b"01234567")


def test_a_checksummed_chunk_never_verified_is_rolled_back(client: FlaskClient,
                                                          store: UploadStore):
    """A writer killed during a checksummed chunk left a tentative record: the chunk is gone."""
    create(client, length=8)
    patch(client, 0, b"0123")
    _write_progress(store, {**_progress(store), "tentative": True})
    with open(disk.file_path(store, UPLOAD_ID, 0), "ab") as handle:
        handle.write(b"45")
    assert offset(client).get_json()["offset"] == 4
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == b"0123"
    answer = patch(client, 4, b"4567", headers={"Upload-Checksum": checksum(b"4567")})
    assert answer.get_json()["state"] == "complete"
    assert store.status(UPLOAD_ID)["manifest"]["files"][0]["sha256"] == sha256(b"01234567")


def test_a_record_without_a_usable_hash_state_is_rebuilt_from_the_file(client: FlaskClient,
                                                                       store: UploadStore):
    create(client, length=8)
    patch(client, 0, b"0123")
    _write_progress(store, {**_progress(store), "sha256_state": base64.b64encode(b"junk").decode()})
    assert offset(client).get_json()["offset"] == 4
    hasher = PySha256()
    hasher.update(b"0123")
    expected = PySha256.deserialize(base64.b64decode(_progress(store)["sha256_state"]))
    assert expected.finalize() == hasher.finalize()
    patch(client, 4, b"4567")
    assert store.status(UPLOAD_ID)["manifest"]["files"][0]["sha256"] == sha256(b"01234567")


def test_the_offset_never_outruns_the_file(client: FlaskClient, store: UploadStore):
    """A record ahead of its file (bytes lost with the page cache) falls back to the file."""
    create(client, length=8)
    patch(client, 0, b"0123")
    with open(disk.file_path(store, UPLOAD_ID, 0), "r+b") as handle:
        handle.truncate(2)
    assert offset(client).get_json()["offset"] == 2
    patch(client, 2, b"234567")
    assert store.status(UPLOAD_ID)["manifest"]["files"][0]["sha256"] == sha256(b"01234567")
