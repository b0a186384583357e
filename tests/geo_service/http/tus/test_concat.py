"""Concatenation: partial uploads, and the final upload made of them in order."""

import errno
import os

import pytest
from flask.testing import FlaskClient

from geo_service.store import UploadStore
from tests.geo_service.http.tus import (
    AUTH,
    MAX_SIZE,
    UPLOAD_ID,
    create,
    offset,
    patch,
    problem,
    sha256,
)
from tests.geo_service.store import disk

PARTS = ["1b1b1b1b-1e2f-4a3b-8c9d-0e1f2a3b4c5d", "2c2c2c2c-1e2f-4a3b-8c9d-0e1f2a3b4c5d",
         "3d3d3d3d-1e2f-4a3b-8c9d-0e1f2a3b4c5d"]
DATA = [b"first part ", b"the second, ", b"and the last"]


def _partial(client: FlaskClient, upload_id: str, data: bytes | None,
             length: int | None = None) -> None:
    """A partial upload of ``data``'s length, sent whole unless ``data`` is None."""
    size = len(data) if data is not None else length
    answer = client.put(f"/uploads/{upload_id}", json={"partial": True, "length": size},
                        headers=AUTH)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    if data:
        assert patch(client, 0, data, upload_id).status_code == 200


def _final(client: FlaskClient, parts: list[str], **info: object):
    return create(client, length=None, concat=parts, **info)


def _all_partials(client: FlaskClient) -> None:
    for upload_id, data in zip(PARTS, DATA, strict=True):
        _partial(client, upload_id, data)


def test_a_complete_partial_upload_is_kept_unsealed_without_a_purpose(client: FlaskClient,
                                                                     store: UploadStore):
    _partial(client, PARTS[0], DATA[0])
    document = offset(client, PARTS[0]).get_json()
    assert document["state"] == "receiving" and document["partial"] is True
    assert document["offset"] == document["length"] == len(DATA[0])
    assert document["purpose"] is None and store.manifest(PARTS[0]) is None


def test_an_empty_partial_upload_is_not_sealed_either(client: FlaskClient, store: UploadStore):
    _partial(client, PARTS[0], b"")
    assert store.manifest(PARTS[0]) is None


def test_the_final_upload_is_its_parts_in_order_sealed_with_their_sha256(
        client: FlaskClient, store: UploadStore):
    _all_partials(client)
    order = [PARTS[2], PARTS[0], PARTS[1]]
    answer = _final(client, order)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    document = answer.get_json()
    whole = DATA[2] + DATA[0] + DATA[1]
    assert document["state"] == "complete" and document["concat"] == order
    assert document["offset"] == document["length"] == len(whole)
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == whole
    manifest = store.manifest(UPLOAD_ID)
    assert manifest is not None and manifest["files"][0]["sha256"] == sha256(whole)
    assert (manifest["purpose"], manifest["files"][0]["name"]) == ("raw", "a.bin")
    assert not any(store.exists(part) for part in PARTS)


def test_a_part_still_receiving_is_refused_and_nothing_is_made(client: FlaskClient,
                                                              store: UploadStore):
    _partial(client, PARTS[0], DATA[0])
    _partial(client, PARTS[1], None, length=5)
    patch(client, 0, b"abc", PARTS[1])
    assert "not complete: 3 of 5" in problem(_final(client, PARTS[:2]), 400,
                                             "bad-request")["detail"]
    assert not store.exists(UPLOAD_ID)
    assert store.exists(PARTS[0]) and store.exists(PARTS[1])


@pytest.mark.parametrize("why", ["missing", "not-partial", "other-tenant", "twice"])
def test_only_this_tenants_partial_uploads_can_be_joined_once_each(
        client: FlaskClient, store: UploadStore, why: str):
    _partial(client, PARTS[0], DATA[0])
    parts = [PARTS[0], PARTS[1]]
    if why == "not-partial":
        create(client, length=3, upload_id=PARTS[1])
        patch(client, 0, b"abc", PARTS[1])
    if why == "other-tenant":
        client.put(f"/uploads/{PARTS[1]}", json={"partial": True, "length": 0},
                   headers={**AUTH, "Handoff-Tenant": "bob"})
    if why == "twice":
        parts = [PARTS[0], PARTS[0]]
    problem(_final(client, parts), 400, "bad-request")
    assert not store.exists(UPLOAD_ID) and store.exists(PARTS[0])


def test_a_part_joined_once_is_gone_for_a_second_final(client: FlaskClient):
    _all_partials(client)
    assert _final(client, PARTS).status_code == 201
    other = "5e5e5e5e-1e2f-4a3b-8c9d-0e1f2a3b4c5d"
    problem(_final(client, PARTS[:1], upload_id=other), 400, "bad-request")


def test_parts_past_the_limit_are_refused(client: FlaskClient, store: UploadStore):
    half = MAX_SIZE // 2 + 1
    _partial(client, PARTS[0], b"a" * half)
    _partial(client, PARTS[1], b"b" * half)
    problem(_final(client, PARTS[:2]), 413, "too-large")
    assert not store.exists(UPLOAD_ID)


@pytest.mark.parametrize("parts", [[], "x", [1], ["not-an-id"]])
def test_a_malformed_list_of_parts_is_refused(client: FlaskClient, parts: object):
    answer = _final(client, parts)  # type: ignore[arg-type]
    assert answer.status_code == 400


def test_a_final_upload_takes_no_appends(client: FlaskClient, store: UploadStore):
    _all_partials(client)
    _final(client, PARTS)
    problem(patch(client, 0, b"more"), 403, "final-upload")
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == b"".join(DATA)


def test_a_partial_upload_takes_neither_purpose_nor_a_name(client: FlaskClient,
                                                          store: UploadStore):
    client.put(f"/uploads/{PARTS[0]}", headers=AUTH,
               json={"partial": True, "length": 1, "purpose": "no-such", "filename": ""})
    assert store.info(PARTS[0])["purpose"] is None


def test_without_a_kernel_copy_the_first_part_goes_through_memory(
        client: FlaskClient, store: UploadStore, monkeypatch: pytest.MonkeyPatch):
    def refuse(*args: object) -> int:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "copy_file_range", refuse)
    _all_partials(client)
    assert _final(client, PARTS).status_code == 201
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == b"".join(DATA)
    assert store.manifest(UPLOAD_ID)["files"][0]["sha256"] == sha256(b"".join(DATA))
