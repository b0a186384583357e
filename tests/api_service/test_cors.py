"""CORS on the upload routes under Flask's test client: preflights, marked answers, no others.

A browser reads these headers and nothing else decides: an answer without
``Access-Control-Allow-Origin`` naming the page's origin is withheld from
the page. The standalone service and a host app that mounts the extension
get the same, on the upload routes alone.
"""

import hashlib

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api_service import Handoff, cors
from api_service.replicas import Replicas
from api_service.state import HandoffState
from handoff.auth import parse_credentials
from handoff.config import Settings
from tests.support import host_app
from tests.support.fakes import FakeGeo, FakeQueue
from tests.support.multipart_bodies import content_type, upload_body
from tests.support.problems import assert_problem

ALLOWED = "https://app.example"
OTHER = "https://evil.example"
ALICE = {"Authorization": "Bearer alice-token"}
UNKNOWN_ID = "0b6f2c1e-5d7a-4c39-9a43-7d4c2f0e8a11"
SETTINGS = Settings(geo_secret="x", redis_url="redis://127.0.0.1:1/0",
                    api_tokens=parse_credentials("alice:alice-token"),
                    cors_origins=(ALLOWED, "http://127.0.0.1:3000"))


def _faked(app: Flask) -> FlaskClient:
    state: HandoffState = app.extensions["handoff"]
    state.replicas = Replicas([FakeGeo()])  # type: ignore[list-item]
    state.queue = FakeQueue()  # type: ignore[assignment]
    return app.test_client()


def _client(settings: Settings = SETTINGS) -> FlaskClient:
    app = Flask(__name__)
    Handoff(app, settings=settings)
    return _faked(app)


@pytest.fixture
def client() -> FlaskClient:
    return _client()


def _preflight(client: FlaskClient, path: str, origin: str, method: str = "PATCH") -> TestResponse:
    return client.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,tus-resumable,upload-offset"})


def _cors_headers(response: TestResponse) -> list[str]:
    return [name for name, _ in response.headers if name.startswith("Access-Control-")]


def _listed(value: str) -> list[str]:
    return [item.strip() for item in value.split(",")]


@pytest.mark.parametrize("path", ["/v1/uploads", f"/v1/uploads/{UNKNOWN_ID}"])
def test_a_preflight_from_a_listed_origin_is_answered_without_a_token(client: FlaskClient,
                                                                      path: str) -> None:
    answer = _preflight(client, path, ALLOWED)

    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert _listed(answer.headers["Access-Control-Allow-Methods"]) == [
        "POST", "GET", "HEAD", "PATCH", "DELETE", "OPTIONS"]
    assert _listed(answer.headers["Access-Control-Allow-Headers"]) == [
        "Authorization", "Content-Type", "Tus-Resumable", "Upload-Length", "Upload-Metadata",
        "Upload-Offset", "Upload-Checksum", "Upload-Defer-Length", "Upload-Concat"]
    assert int(answer.headers["Access-Control-Max-Age"]) == cors.MAX_AGE
    assert "Origin" in answer.headers["Vary"]
    assert "Content-Type" not in answer.headers
    assert answer.get_data() == b""


def test_every_listed_origin_is_answered_with_its_own_name(client: FlaskClient) -> None:
    answer = _preflight(client, "/v1/uploads", "http://127.0.0.1:3000", method="POST")
    assert answer.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:3000"


@pytest.mark.parametrize("origin", [OTHER, "null", "https://app.example.evil.example",
                                    "http://app.example"])
def test_an_origin_not_listed_gets_no_cors_header(client: FlaskClient, origin: str) -> None:
    preflight = _preflight(client, "/v1/uploads", origin)
    answer = client.get(f"/v1/uploads/{UNKNOWN_ID}", headers={**ALICE, "Origin": origin})

    for response in (preflight, answer):
        assert _cors_headers(response) == []
        assert "Origin" in response.headers["Vary"]
    assert answer.status_code == 404


def test_without_the_setting_no_answer_mentions_cors() -> None:
    client = _client(Settings(geo_secret="x", redis_url="redis://127.0.0.1:1/0",
                              api_tokens=SETTINGS.api_tokens))

    preflight = _preflight(client, "/v1/uploads", ALLOWED)
    answer = client.get(f"/v1/uploads/{UNKNOWN_ID}", headers={**ALICE, "Origin": ALLOWED})

    for response in (preflight, answer):
        assert _cors_headers(response) == []
        assert "Vary" not in response.headers
    assert preflight.headers["Tus-Version"] == "1.0.0"


def test_an_options_request_that_is_no_preflight_is_tus_discovery(client: FlaskClient) -> None:
    answer = client.options("/v1/uploads", headers={"Origin": ALLOWED})

    assert answer.status_code == 204
    assert answer.headers["Tus-Version"] == "1.0.0"
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Access-Control-Allow-Methods" not in answer.headers


def test_an_accepted_upload_lets_the_page_read_its_headers(client: FlaskClient) -> None:
    data = b"hello, browser\n" * 100
    answer = client.post("/v1/uploads", data=upload_body([("a.txt", data)]),
                         content_type=content_type(), headers={**ALICE, "Origin": ALLOWED})

    assert answer.status_code == 202
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    assert _listed(answer.headers["Access-Control-Expose-Headers"]) == [
        "Location", "Upload-Offset", "Upload-Length", "Upload-Expires", "Tus-Resumable",
        "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm",
            "Upload-Concat"]
    assert answer.get_json()["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()

    status = client.get(answer.get_json()["links"]["self"], headers={**ALICE, "Origin": ALLOWED})
    assert status.status_code == 200
    assert status.headers["Access-Control-Allow-Origin"] == ALLOWED


@pytest.mark.parametrize(("method", "headers", "status"), [
    ("get", {}, 401),
    ("head", {**ALICE, "Tus-Resumable": "1.0.0"}, 404),
    ("patch", {**ALICE, "Tus-Resumable": "0.2.2"}, 412),
])
def test_a_refusal_reaches_the_page_too(client: FlaskClient, method: str,
                                        headers: dict[str, str], status: int) -> None:
    answer = getattr(client, method)(f"/v1/uploads/{UNKNOWN_ID}",
                                     headers={**headers, "Origin": ALLOWED})

    assert_problem(answer, status)
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Upload-Offset" in answer.headers["Access-Control-Expose-Headers"]


def test_a_host_app_gets_cors_on_the_upload_routes_alone() -> None:
    client = _faked(host_app.create_app(SETTINGS))

    preflight = _preflight(client, f"{host_app.PREFIX}/uploads", ALLOWED, method="POST")
    home = client.get("/", headers={"Origin": ALLOWED})

    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert home.status_code == 200
    assert "Access-Control-Allow-Origin" not in home.headers
    assert "Vary" not in home.headers
