"""The geo service's internal routes under Flask's test client, over a temporary upload store."""

import hashlib
import logging
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from geo_service.app import create_app
from geo_service.http.state import state_of, upload_slot
from geo_service.store import FileStore, LockLost, UploadStore
from geo_service.store.bucket import BucketUnavailable
from handoff.config import Settings, parse_store_url
from handoff.fields import MAX_METADATA_DEPTH
from handoff.processors import installed
from handoff.server.web import UploadSlots
from tests.geo_service.http import MAX_SIZE, SECRET
from tests.geo_service.store import disk
from tests.support.multipart_bodies import content_type, upload_body
from tests.support.problems import assert_problem

AUTH = {"Authorization": f"Bearer {SECRET}"}
UPLOAD_ID = "0b6f2c1e-5d7a-4c39-9a43-7d4c2f0e8a11"
DATA = b"every byte once\n" * 1000


def _post(client: FlaskClient, upload_id: str = UPLOAD_ID, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> TestResponse:
    return client.post(f"/uploads/{upload_id}",
                       data=upload_body([("a.txt", DATA)]) if body is None else body,
                       content_type=content_type(),
                       headers={**AUTH, "Handoff-Tenant": "alice"} if headers is None
                       else headers)




def test_an_upload_is_stored_and_answered_with_its_manifest(client: FlaskClient,
                                                            store: UploadStore) -> None:
    response = _post(client)

    assert response.status_code == 201
    manifest = response.get_json()
    assert manifest["purpose"] == "raw"
    assert manifest["tenant"] == "alice"
    [stored] = manifest["files"]
    assert (stored["name"], stored["size"]) == ("a.txt", len(DATA))
    assert stored["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == DATA
    assert client.get(f"/uploads/{UPLOAD_ID}", headers=AUTH).get_json()["state"] == "complete"


@pytest.mark.parametrize(("method", "path"), [
    ("post", f"/uploads/{UPLOAD_ID}"), ("get", f"/uploads/{UPLOAD_ID}"),
    ("delete", f"/uploads/{UPLOAD_ID}"), ("put", f"/uploads/{UPLOAD_ID}/job"),
    ("get", "/purposes"),
])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-secret"}])
def test_every_route_needs_the_shared_secret(client: FlaskClient, store: UploadStore,
                                             method: str, path: str,
                                             headers: dict[str, str]) -> None:
    response = getattr(client, method)(path, headers=headers, data=upload_body([("a", b"a")]),
                                       content_type=content_type())

    assert_problem(response, 401, "unauthorized")
    assert list(store.upload_ids()) == []


def test_an_id_is_taken_once(client: FlaskClient, store: UploadStore) -> None:
    assert _post(client).status_code == 201

    body = assert_problem(_post(client, body=upload_body([("b.txt", b"other")])), 409, "exists")

    assert body["upload_id"] == UPLOAD_ID
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == DATA


@pytest.mark.parametrize(("upload_id", "body", "headers", "status", "kind"), [
    ("not-a-uuid", None, None, 400, "invalid-id"),
    (UPLOAD_ID.upper(), None, None, 400, "invalid-id"),
    (UPLOAD_ID, None, {**AUTH, "Handoff-Tenant": "no spaces"}, 400, "invalid-tenant"),
    (UPLOAD_ID, upload_body([("a.txt", DATA)], purpose="nope"), None, 400, "bad-form"),
    (UPLOAD_ID, upload_body([("a.txt", b"x" * (MAX_SIZE + 1))]), None, 413, "too-large"),
])
def test_a_refused_upload_leaves_nothing_behind(client: FlaskClient, store: UploadStore,
                                                upload_id: str, body: bytes | None,
                                                headers: dict[str, str] | None, status: int,
                                                kind: str) -> None:
    assert_problem(_post(client, upload_id, body, headers), status, kind)

    assert list(store.upload_ids()) == []


def test_a_body_of_another_type_is_415(client: FlaskClient) -> None:
    response = client.post(f"/uploads/{UPLOAD_ID}", data=b"{}", headers=AUTH,
                           content_type="application/json")

    assert_problem(response, 415, "not-multipart")


def test_a_full_process_refuses_with_503(app: Flask, client: FlaskClient,
                                         store: UploadStore) -> None:
    state_of(app).slots = UploadSlots(0)

    response = _post(client)

    assert_problem(response, 503, "busy")
    assert int(response.headers["Retry-After"]) > 0
    assert list(store.upload_ids()) == []


def test_recording_the_job_makes_the_upload_queued(client: FlaskClient) -> None:
    _post(client)

    response = client.put(f"/uploads/{UPLOAD_ID}/job", json={"message_id": "m-1"}, headers=AUTH)

    assert response.status_code == 204
    status = client.get(f"/uploads/{UPLOAD_ID}", headers=AUTH).get_json()
    assert (status["state"], status["job"]) == ("queued", {"message_id": "m-1"})


def test_a_deleted_upload_is_gone(client: FlaskClient, store: UploadStore) -> None:
    _post(client)

    assert client.delete(f"/uploads/{UPLOAD_ID}", headers=AUTH).status_code == 204

    assert list(store.upload_ids()) == []
    for method in ("get", "delete"):
        assert_problem(getattr(client, method)(f"/uploads/{UPLOAD_ID}", headers=AUTH), 404,
                 "not-found")
    assert_problem(client.put(f"/uploads/{UPLOAD_ID}/job", json={}, headers=AUTH), 404, "not-found")


def test_purposes_are_the_installed_processors(client: FlaskClient) -> None:
    response = client.get("/purposes", headers=AUTH)

    assert response.get_json() == sorted(installed({}).purposes)


def test_capacity_says_who_answers_its_room_and_readiness(client: FlaskClient) -> None:
    response = client.get("/capacity", headers=AUTH)

    document = response.get_json()
    assert (document["replica"], document["in_flight"], document["ready"]) == (None, 0, True)
    assert document["free_bytes"] > 0


def test_capacity_names_a_shared_store_and_none_of_its_own(app: Flask,
                                                          client: FlaskClient) -> None:
    assert client.get("/capacity", headers=AUTH).get_json()["store"] is None
    app.config["HANDOFF"] = replace(app.config["HANDOFF"],
                                    store_url=parse_store_url("s3://uploads/eu"))

    assert client.get("/capacity", headers=AUTH).get_json()["store"] == "s3://uploads/eu"


def test_capacity_counts_the_uploads_arriving(app: Flask, client: FlaskClient) -> None:
    with app.app_context(), upload_slot(UPLOAD_ID):
        assert client.get("/capacity", headers=AUTH).get_json()["in_flight"] == 1
    assert client.get("/capacity", headers=AUTH).get_json()["in_flight"] == 0


def test_a_named_replica_keeps_its_store_in_its_own_folder(tmp_path: Path) -> None:
    settings = Settings(geo_secret=SECRET, uploads_root=tmp_path, replica="geo-1")
    client = create_app(settings).test_client()

    assert client.get("/capacity", headers=AUTH).get_json()["replica"] == "geo-1"
    assert _post(client).status_code == 201
    assert list(FileStore(tmp_path / "geo-1").upload_ids()) == [UPLOAD_ID]


def test_capacity_is_not_ready_when_readyz_is_not(app: Flask, client: FlaskClient) -> None:
    state_of(app).ready = lambda: {"store": "missing"}

    assert client.get("/capacity", headers=AUTH).get_json()["ready"] is False


def test_capacity_needs_the_secret(client: FlaskClient) -> None:
    assert_problem(client.get("/capacity"), 401, "unauthorized")


def _nested_metadata(depth: int) -> str:
    return '{"a":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize("metadata", [
    _nested_metadata(MAX_METADATA_DEPTH + 1), _nested_metadata(10_000),
    '{"x": NaN}', '{"x": [Infinity]}', '{"x": {"y": -Infinity}}',
], ids=["depth-33", "depth-10000", "nan", "infinity", "-infinity"])
def test_metadata_too_deep_or_not_finite_is_400_naming_it_and_logs_no_error(
        client: FlaskClient, store: UploadStore, caplog: pytest.LogCaptureFixture,
        metadata: str) -> None:
    with caplog.at_level(logging.INFO):
        response = _post(client, body=upload_body([("a.txt", DATA)], metadata=metadata))

    assert assert_problem(response, 400, "bad-form")["detail"].startswith("metadata ")
    assert not store.exists(UPLOAD_ID)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


class _FailingFile:
    """A file writer whose store stops answering after the first chunk."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure

    def write(self, data: bytes | memoryview) -> None:
        raise self.failure

    def abort(self) -> None:
        return None

    def __enter__(self) -> "_FailingFile":
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


@pytest.mark.parametrize("failure", [BucketUnavailable("connection refused"),
                                     LockLost(UPLOAD_ID)])
def test_a_store_that_fails_mid_body_is_a_503_to_retry(
        app: Flask, client: FlaskClient, store: UploadStore, failure: Exception,
        monkeypatch: pytest.MonkeyPatch) -> None:
    geo_store = state_of(app).store
    monkeypatch.setattr(geo_store, "open_writer", lambda upload_id, index: _FailingFile(failure))

    response = _post(client)

    body = assert_problem(response, 503, "store-unavailable")
    assert response.headers["Retry-After"]
    assert ("lock expired" if isinstance(failure, LockLost) else "did not answer") in \
        body["detail"]
    assert "connection refused" not in body["detail"]
    assert store.manifest(UPLOAD_ID) is None


def test_a_store_that_does_not_answer_a_read_is_a_503(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(upload_id: str) -> None:
        raise BucketUnavailable("read timed out")

    monkeypatch.setattr(state_of(app).store, "status", unavailable)

    response = client.get(f"/uploads/{UPLOAD_ID}", headers=AUTH)

    detail = assert_problem(response, 503, "store-unavailable")["detail"]
    assert "did not answer" in detail and "read timed out" not in detail


def test_a_store_down_for_the_removal_too_still_answers_why_the_upload_broke(
        app: Flask, client: FlaskClient, store: UploadStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    geo_store = state_of(app).store
    monkeypatch.setattr(geo_store, "open_writer", lambda upload_id, index: _FailingFile(
        BucketUnavailable("connection refused")))

    def unreachable(upload_id: str) -> int:
        raise BucketUnavailable("connection refused again")

    monkeypatch.setattr(geo_store, "remove", unreachable)

    response = _post(client)

    body = assert_problem(response, 503, "store-unavailable")
    assert body["upload_id"] == UPLOAD_ID
    assert store.manifest(UPLOAD_ID) is None
