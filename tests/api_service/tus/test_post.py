"""POST /v1/uploads with Tus-Resumable: a tus creation, refused before any byte if it cannot be."""

import json
import logging

import pytest
from flask.testing import FlaskClient

from handoff.fields import MAX_METADATA_DEPTH
from tests.api_service.tus import ALICE, MAX_SIZE, TUS, create, metadata, problem
from tests.api_service.tus.conftest import Api
from tests.geo_service.store import disk


def _upload_id(location: str) -> str:
    return location.rsplit("/", 1)[-1]


def test_a_creation_answers_201_with_where_to_send_the_bytes(api: Api):
    answer = create(api.client, length=10, metadata='{"project": "p"}')
    assert answer.status_code == 201
    assert answer.headers["Location"].startswith("/v1/uploads/")
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    assert answer.headers["Upload-Offset"] == "0"
    assert answer.headers["Upload-Expires"].endswith(" GMT")
    status = api.store.status(_upload_id(answer.headers["Location"]))
    assert status["tenant"] == "alice" and status["state"] == "receiving"
    assert status["info"] == {"purpose": "raw", "metadata": {"project": "p"},
                              "filename": "plan.bin", "content_type": "application/octet-stream",
                              "length": 10, "partial": False}


def test_the_length_may_be_deferred(api: Api):
    answer = create(api.client, length=None)
    assert api.store.status(_upload_id(answer.headers["Location"]))["info"]["length"] is None


def test_a_creation_may_carry_the_first_bytes(api: Api):
    answer = create(api.client, length=10, data=b"01234")
    assert answer.status_code == 201 and answer.headers["Upload-Offset"] == "5"
    upload_id = _upload_id(answer.headers["Location"])
    assert disk.file_path(api.store, upload_id, 0).read_bytes() == b"01234"
    assert api.queue.jobs == []


def test_a_creation_with_every_byte_is_stored_and_queued(api: Api):
    answer = create(api.client, length=3, data=b"abc", filetype="text/plain")
    upload_id = _upload_id(answer.headers["Location"])
    assert answer.status_code == 201 and "Upload-Expires" not in answer.headers
    assert api.queue.jobs == [(upload_id, "raw", {})]
    assert api.store.status(upload_id)["state"] == "queued"
    assert api.store.status(upload_id)["manifest"]["files"][0]["content_type"] == "text/plain"


def test_an_empty_upload_is_queued_at_creation(api: Api):
    answer = create(api.client, length=0)
    assert [job[0] for job in api.queue.jobs] == [_upload_id(answer.headers["Location"])]


@pytest.mark.parametrize("headers, pairs", [
    ({}, {"purpose": "nope"}),
    ({}, {"purpose": None}),
    ({}, {"metadata": "[1, 2]"}),
    ({}, {"metadata": "{not json"}),
    ({"Upload-Metadata": "purpose not*base64"}, {}),
    ({"Upload-Length": "-1"}, {}),
    ({"Upload-Defer-Length": "1"}, {}),
])
def test_what_cannot_be_used_is_400_before_any_byte(api: Api, headers: dict[str, str],
                                                    pairs: dict[str, str | None]):
    problem(create(api.client, headers=headers, **pairs), 400, "bad-request")
    assert list(api.store.upload_ids()) == []


def _nested(depth: int) -> str:
    return '{"a":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize("text", [
    _nested(MAX_METADATA_DEPTH + 1), _nested(962), _nested(10_000),
    '{"x": NaN}', '{"x": [Infinity]}', '{"x": {"y": -Infinity}}',
], ids=["depth-33", "depth-962", "depth-10000", "nan", "infinity", "-infinity"])
def test_metadata_too_deep_or_not_finite_is_400_naming_it_and_logs_no_error(
        api: Api, caplog: pytest.LogCaptureFixture, text: str):
    with caplog.at_level(logging.INFO):
        body = problem(create(api.client, metadata=text), 400, "bad-request")
    assert body["detail"].startswith("metadata ")
    assert list(api.store.upload_ids()) == []
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_metadata_may_nest_to_the_documented_depth(api: Api):
    text = _nested(MAX_METADATA_DEPTH)
    answer = create(api.client, metadata=text)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    [upload_id] = api.store.upload_ids()
    assert api.store.status(upload_id)["info"]["metadata"] == json.loads(text)


def test_neither_length_nor_deferral_is_400(client: FlaskClient):
    answer = client.post("/v1/uploads", headers={**ALICE, **TUS,
                                                  "Upload-Metadata": metadata()})
    problem(answer, 400, "bad-request")


def test_over_the_size_limit_is_413_before_any_byte(api: Api):
    problem(create(api.client, length=MAX_SIZE + 1), 413, "too-large")
    assert list(api.store.upload_ids()) == []


@pytest.mark.parametrize(("length", "size", "headers", "status", "kind"), [
    pytest.param(5, 6, {}, 413, "too-large", id="past-its-length"),
    pytest.param(None, MAX_SIZE + 1, {}, 413, "too-large", id="past-the-limit"),
    pytest.param(5, 5, {"Upload-Checksum": "md5 AAAA"}, 400, "bad-request",
                 id="unknown-checksum"),
])
def test_first_bytes_refused_by_their_headers_create_nothing(api: Api, length: int | None,
                                                             size: int,
                                                             headers: dict[str, str],
                                                             status: int, kind: str):
    answer = create(api.client, length=length, data=b"x" * size, headers=headers)
    problem(answer, status, kind)
    assert "Location" not in answer.headers
    assert list(api.store.upload_ids()) == []


def test_first_bytes_of_another_media_type_are_415(api: Api):
    answer = create(api.client, data=b"x", headers={"Content-Type": "text/plain"})
    problem(answer, 415, "unsupported-media-type")
    assert list(api.store.upload_ids()) == []


def test_another_tus_version_is_412_with_the_one_spoken(client: FlaskClient):
    answer = create(client, headers={"Tus-Resumable": "0.2.2"})
    problem(answer, 412, "unsupported-version")
    assert answer.headers["Tus-Version"] == "1.0.0"


def test_without_a_token_nothing_is_created(api: Api):
    answer = api.client.post("/v1/uploads", headers={**TUS, "Upload-Length": "1",
                                                     "Upload-Metadata": metadata()})
    problem(answer, 401, "unauthorized")


def test_without_tus_resumable_the_post_is_the_multipart_one(client: FlaskClient):
    answer = client.post("/v1/uploads", data=b"x", headers={**ALICE, "Upload-Length": "1",
                                                            "Content-Type": "text/plain"})
    assert answer.status_code == 415
    assert "Tus-Resumable" not in answer.headers
    assert json.loads(answer.get_data())["type"].endswith("/not-multipart")


def test_a_filename_comes_back_from_the_metadata(api: Api):
    answer = create(api.client, filename="Zürich.zip")
    info = api.store.status(_upload_id(answer.headers["Location"]))["info"]
    assert info["filename"] == "Zürich.zip"
