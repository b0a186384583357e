"""PUT /uploads/<id>: an empty resumable upload, made with its info."""

import logging
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from geo_service.store import UploadStore
from handoff.fields import MAX_METADATA_DEPTH
from tests.geo_service.http.tus import AUTH, MAX_SIZE, UPLOAD_ID, create, problem, sha256
from tests.geo_service.store import disk


def test_an_upload_is_made_empty_with_its_info(client: FlaskClient, store: UploadStore):
    answer = create(client, length=10)
    assert answer.status_code == 201
    document = answer.get_json()
    assert document["offset"] == 0 and document["length"] == 10
    assert document["state"] == "receiving"
    assert document["expires"] > store.last_activity(UPLOAD_ID)
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == b""
    status = store.status(UPLOAD_ID)
    assert status["tenant"] == "alice" and status["offset"] == 0
    assert status["info"]["filename"] == "a.bin" and status["info"]["metadata"] == {"project": "p"}


def test_the_length_may_be_left_for_later(client: FlaskClient):
    assert create(client, length=None).get_json()["length"] is None


def test_an_empty_upload_is_sealed_at_once(client: FlaskClient, store: UploadStore):
    assert create(client, length=0).get_json()["state"] == "complete"
    manifest = store.status(UPLOAD_ID)["manifest"]
    assert manifest["files"][0]["sha256"] == sha256(b"") and manifest["size"] == 0


def test_an_id_is_made_once(client: FlaskClient):
    create(client)
    problem(create(client), 409, "exists")


def test_the_limit_is_refused_past_before_any_byte(client: FlaskClient, store: UploadStore):
    problem(create(client, length=MAX_SIZE + 1), 413, "too-large")
    assert not store.exists(UPLOAD_ID)


@pytest.mark.parametrize("info", [
    {"purpose": "nope"},
    {"purpose": None},
    {"metadata": ["not", "an", "object"]},
    {"filename": ""},
    {"filename": "x" * 256},
    {"length": -1},
    {"length": "10"},
    {"content_type": 3},
])
def test_bad_info_is_refused(client: FlaskClient, store: UploadStore, info: dict[str, Any]):
    problem(create(client, **info), 400, "bad-request")
    assert not store.exists(UPLOAD_ID)


def test_a_body_that_is_no_json_object_is_refused(client: FlaskClient):
    answer = client.put(f"/uploads/{UPLOAD_ID}", json=[1], headers=AUTH)
    problem(answer, 400, "bad-request")


def test_without_the_secret_nothing_is_made(client: FlaskClient, store: UploadStore):
    answer = client.put(f"/uploads/{UPLOAD_ID}", json={}, headers={"Handoff-Tenant": "alice"})
    problem(answer, 401, "unauthorized")
    assert not store.exists(UPLOAD_ID)


def test_an_invalid_id_is_refused(client: FlaskClient):
    problem(create(client, upload_id="../etc"), 404, "not-found")
    problem(create(client, upload_id=UPLOAD_ID.upper()), 400, "invalid-id")


def _raw_create(client: FlaskClient, metadata: str) -> TestResponse:
    body = ('{"purpose": "raw", "filename": "a.bin", "content_type": "application/octet-stream", '
            f'"length": 10, "metadata": {metadata}}}')
    return client.put(f"/uploads/{UPLOAD_ID}", data=body, headers=AUTH,
                      content_type="application/json")


def _nested(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def test_metadata_may_nest_to_the_documented_depth(client: FlaskClient, store: UploadStore):
    assert _raw_create(client, _nested(MAX_METADATA_DEPTH)).status_code == 201
    assert store.status(UPLOAD_ID)["info"]["metadata"]["a"]


@pytest.mark.parametrize("metadata", [
    _nested(MAX_METADATA_DEPTH + 1),
    _nested(10_000),
    '{"x": NaN}',
    '{"x": [Infinity]}',
    '{"x": {"y": -Infinity}}',
    '{"x": 1e999}',
])
def test_metadata_too_deep_or_not_finite_is_refused_without_an_error_logged(
        client: FlaskClient, store: UploadStore, caplog: pytest.LogCaptureFixture,
        metadata: str):
    with caplog.at_level(logging.INFO):
        body = problem(_raw_create(client, metadata), 400, "bad-request")
    assert "metadata" in body["detail"]
    assert not store.exists(UPLOAD_ID)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
