"""The upload routes under Flask's test client, with a fake geo service and a fake queue.

Two apps mount them: a bare Flask app with the bearer tokens (as the
standalone service does, under ``/v1``) and the host app of
``tests/support/host_app.py`` (its own users, pages and limits, under
``/shared``). No server runs: the fakes sit in ``app.extensions["handoff"]``.
"""

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api_service import Handoff
from api_service.app import create_app
from api_service.geo import GeoError, GeoUnreachable
from api_service.replicas import Replicas
from api_service.state import HandoffState
from handoff.auth import parse_credentials
from handoff.config import Settings
from handoff.fields import MAX_METADATA_DEPTH
from handoff.server.web import UploadSlots
from tests.support import host_app
from tests.support.fakes import FakeGeo, FakeQueue, FakeRecords
from tests.support.multipart_bodies import content_type, upload_body
from tests.support.problems import assert_problem

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}
UNKNOWN_ID = "0b6f2c1e-5d7a-4c39-9a43-7d4c2f0e8a11"
SETTINGS = Settings(geo_secret="x", redis_url="redis://127.0.0.1:1/0",
                    api_tokens=parse_credentials("alice:alice-token,bob:bob-token"),
                    relay_chunk_size=16 * 1024, max_upload_size=1024 * 1024)


@dataclass
class Mounted:
    app: Flask
    client: FlaskClient
    state: HandoffState
    geo: FakeGeo
    queue: FakeQueue
    prefix: str

    def upload(self, files: list[tuple[str, bytes]], headers: dict[str, str],
               **fields: Any) -> TestResponse:
        return self.client.post(f"{self.prefix}/uploads", data=upload_body(files, **fields),
                                content_type=content_type(), headers=headers)


def _mount(app: Flask, prefix: str) -> Mounted:
    state: HandoffState = app.extensions["handoff"]
    geo, queue = FakeGeo(), FakeQueue()
    state.replicas, state.queue = Replicas([geo]), queue  # type: ignore[list-item, assignment]
    return Mounted(app, app.test_client(), state, geo, queue, prefix)


@pytest.fixture
def api() -> Mounted:
    """The routes on a bare app, with the standalone service's bearer tokens and prefix."""
    app = Flask(__name__)
    Handoff(app, settings=SETTINGS)
    return _mount(app, "/v1")


@pytest.fixture
def host() -> Mounted:
    return _mount(host_app.create_app(SETTINGS), host_app.PREFIX)




def test_an_upload_is_relayed_enqueued_and_accepted(api: Mounted) -> None:
    data = b"hello, handoff\n" * 5000

    response = api.upload([("a.txt", data)], ALICE, metadata={"project": "p1"})

    assert response.status_code == 202
    body = response.get_json()
    upload_id = body["id"]
    assert body["status"] == "queued"
    assert body["purpose"] == "raw"
    assert body["files"] == [{"name": "a.txt", "size": len(data),
                              "sha256": hashlib.sha256(data).hexdigest()}]
    assert body["links"] == {"self": f"/v1/uploads/{upload_id}"}
    assert api.queue.jobs == [(upload_id, "raw", {"project": "p1"})]
    stored = api.geo.uploads[upload_id]
    assert stored["tenant"] == "alice"
    assert stored["job"]["message_id"] == "m-1"


def test_the_owner_sees_its_upload_under_the_mount(host: Mounted) -> None:
    upload_id = host.upload([("a.txt", b"abc")], {"X-Host-User": "alice"}).get_json()["id"]

    response = host.client.get(f"/shared/uploads/{upload_id}", headers={"X-Host-User": "alice"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "queued"
    assert body["links"] == {"self": f"/shared/uploads/{upload_id}"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer carol-token"},
                                     {"Authorization": "Basic YWxpY2U6YWxpY2U="}])
@pytest.mark.parametrize(("method", "path"), [("post", "/v1/uploads"),
                                              ("get", f"/v1/uploads/{UNKNOWN_ID}"),
                                              ("delete", f"/v1/uploads/{UNKNOWN_ID}")])
def test_without_a_valid_token_every_route_answers_401(api: Mounted, headers: dict[str, str],
                                                      method: str, path: str) -> None:
    response = getattr(api.client, method)(path, headers=headers,
                                           data=upload_body([("a.txt", b"abc")]),
                                           content_type=content_type())

    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert api.geo.uploads == {}
    assert api.queue.jobs == []


def test_another_tenants_upload_is_as_absent_as_none(api: Mounted) -> None:
    upload_id = api.upload([("a.txt", b"abc")], ALICE).get_json()["id"]

    answers = {
        "get": api.client.get(f"/v1/uploads/{upload_id}", headers=BOB),
        "delete": api.client.delete(f"/v1/uploads/{upload_id}", headers=BOB),
        "unknown": api.client.get(f"/v1/uploads/{UNKNOWN_ID}", headers=BOB),
    }

    bodies = {name: assert_problem(answer, 404, "not-found") for name, answer in answers.items()}
    for body in bodies.values():
        body.pop("upload_id")
    assert bodies["get"] == bodies["delete"] == bodies["unknown"]
    assert upload_id in api.geo.uploads
    assert api.client.get(f"/v1/uploads/{upload_id}", headers=ALICE).status_code == 200
    assert api.client.delete(f"/v1/uploads/{upload_id}", headers=ALICE).status_code == 204
    assert upload_id not in api.geo.uploads


def test_a_queue_that_is_down_gives_503_and_the_upload_is_discarded(api: Mounted) -> None:
    api.queue.down = True

    response = api.upload([("a.txt", b"abc")], ALICE)

    body = assert_problem(response, 503, "queue-unavailable")
    assert api.geo.deleted == [body["upload_id"]]
    assert api.geo.uploads == {}


def _geo_down(mounted: Mounted) -> None:
    mounted.geo.failure = GeoError(502, "geo service unreachable or broke off: refused")


def _store_down(mounted: Mounted) -> None:
    mounted.geo.failure = GeoError(503, "the upload store is unavailable: refused",
                                   {"type": "https://handoff.dev/problems/store-unavailable"})


def _slots_taken(mounted: Mounted) -> None:
    mounted.state.slots = UploadSlots(0)


def _nothing(mounted: Mounted) -> None:
    return None


@pytest.mark.parametrize(
    ("setup", "body", "type_", "status", "kind"),
    [
        (_nothing, b"purpose=raw", "application/x-www-form-urlencoded", 415, "not-multipart"),
        (_nothing, b"", "multipart/form-data", 400, "bad-form"),
        (_nothing, upload_body([("a.txt", b"abc")], purpose="nope"), None, 400, "bad-form"),
        (_nothing, upload_body([]), None, 400, "no-file"),
        (_nothing, upload_body([("big", b"x" * (1024 * 1024))]), None, 413, "too-large"),
        (_geo_down, upload_body([("a.txt", b"abc")]), None, 502, "geo-unavailable"),
        (_store_down, upload_body([("a.txt", b"abc")]), None, 503, "store-unavailable"),
        (_slots_taken, upload_body([("a.txt", b"abc")]), None, 503, "busy"),
    ],
    ids=["not-multipart", "no-boundary", "unknown-purpose", "no-file", "too-large",
         "geo-down", "store-down", "busy"],
)
def test_every_refusal_is_a_problem_document(api: Mounted, setup: Any, body: bytes,
                                             type_: str | None, status: int, kind: str) -> None:
    setup(api)

    # Set in the environ: the test client would add a boundary to a multipart type.
    response = api.client.post("/v1/uploads", data=body, headers=ALICE,
                               environ_overrides={"CONTENT_TYPE": type_ or content_type()})

    assert_problem(response, status, kind)
    assert api.queue.jobs == []


def test_an_unexpected_error_in_a_route_is_a_500_problem_without_its_trace(
        host: Mounted, caplog: pytest.LogCaptureFixture) -> None:
    host.geo.failure = RuntimeError("secret internals")

    response = host.client.get(f"/shared/uploads/{UNKNOWN_ID}", headers={"X-Host-User": "alice"})

    body = assert_problem(response, 500, "internal-error")
    assert "secret" not in response.get_data(as_text=True)
    assert body["detail"] == "unexpected error"
    assert "secret internals" in caplog.text


def test_the_hosts_authenticate_decides_and_its_refusal_is_a_problem(host: Mounted) -> None:
    refused = host.upload([("a.txt", b"abc")], {"X-Host-User": "mallory"})

    assert_problem(refused, 401, "unauthorized")
    assert refused.headers["WWW-Authenticate"] == 'HostUser realm="host"'
    accepted = host.upload([("a.txt", b"abc")], {"X-Host-User": "bob"})
    assert accepted.status_code == 202
    assert host.geo.uploads[accepted.get_json()["id"]]["tenant"] == "bob"


def test_an_authenticate_that_returns_no_tenant_name_is_the_apps_500() -> None:
    app = Flask(__name__)
    Handoff(app, settings=SETTINGS, authenticate=lambda request: "not a tenant name")
    mounted = _mount(app, "/v1")

    response = mounted.upload([("a.txt", b"abc")], {})

    assert_problem(response, 500, "internal-error")
    assert mounted.geo.uploads == {}


@pytest.mark.parametrize("path", ["/nowhere", "/shared/nowhere", "/shared"])
def test_the_hosts_404_page_answers_for_urls_it_does_not_route(host: Mounted,
                                                                path: str) -> None:
    response = host.client.get(path, headers={"X-Host-User": "alice"})

    assert response.status_code == 404
    assert response.get_data(as_text=True) == host_app.NOT_FOUND_PAGE


def test_the_hosts_own_errors_stay_the_hosts(host: Mounted) -> None:
    response = host.client.get("/broken")

    assert response.status_code == 500
    assert response.mimetype == "text/html"


def test_the_standalone_service_answers_every_url_with_problems() -> None:
    """Unlike a host, the service itself registers the problem handlers on the whole app."""
    client = create_app(SETTINGS).test_client()

    assert_problem(client.get("/nowhere"), 404, "not-found")
    assert_problem(client.get("/v1/uploads", headers=ALICE), 405, "method-not-allowed")


def test_mounting_leaves_the_hosts_logging_and_config_alone() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1000
    config = dict(app.config)
    extensions = dict(app.extensions)

    Handoff(app, settings=SETTINGS, url_prefix="/shared")

    assert (root.handlers, root.level) == (handlers, level)
    assert dict(app.config) == config
    assert set(app.extensions) - set(extensions) == {"handoff"}
    assert app.error_handler_spec[None] == {}


def test_the_hosts_max_content_length_does_not_limit_uploads(host: Mounted) -> None:
    """The routes read the body from the WSGI input, never through ``request.stream``."""
    data = b"x" * (4 * host_app.MAX_CONTENT_LENGTH)

    response = host.upload([("big.bin", data)], {"X-Host-User": "alice"})

    assert response.status_code == 202
    assert response.get_json()["files"][0]["size"] == len(data)


class _CountingInput(io.BytesIO):
    """A WSGI input that knows how much of it the app has read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


def test_the_body_reaches_the_geo_service_while_it_is_still_arriving(host: Mounted) -> None:
    body = upload_body([("big.bin", b"y" * (512 * 1024))])
    stream = _CountingInput(body)
    read_at_first_chunk: list[int] = []
    host.geo.on_first_chunk = lambda: read_at_first_chunk.append(stream.consumed)

    response = host.client.post("/shared/uploads", input_stream=stream, content_length=len(body),
                                content_type=content_type(), headers={"X-Host-User": "alice"})

    assert response.status_code == 202
    assert stream.consumed == len(body)
    assert read_at_first_chunk[0] <= 2 * SETTINGS.relay_chunk_size


def test_init_app_mounts_later_and_only_once() -> None:
    extension = Handoff(settings=SETTINGS, url_prefix="/shared")
    app = Flask(__name__)

    state = extension.init_app(app, url_prefix="/elsewhere")

    assert app.extensions["handoff"] is state
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert {"/elsewhere/uploads", "/elsewhere/uploads/<upload_id>"} <= rules
    with pytest.raises(RuntimeError, match="already registered"):
        extension.init_app(app)


def test_every_app_of_a_factory_gets_its_own_state() -> None:
    extension = Handoff(settings=SETTINGS)
    first, second = Flask("first"), Flask("second")

    states = [extension.init_app(app) for app in (first, second)]

    assert states[0] is not states[1]
    assert states[0].slots is not states[1].slots



@pytest.fixture
def pair() -> tuple[Mounted, list[FakeGeo]]:
    """The routes over two replicas, geo-0 and geo-1."""
    mounted = _mount(create_app(SETTINGS), "/v1")
    replicas = [FakeGeo(), FakeGeo()]
    for index, replica in enumerate(replicas):
        replica.name = f"geo-{index}"
    clients: Any = replicas
    records: Any = FakeRecords()
    mounted.state.replicas = Replicas(clients, records)
    return mounted, replicas


def test_uploads_take_turns_on_the_replicas_and_their_jobs_go_to_their_queues(
        pair: tuple[Mounted, list[FakeGeo]]) -> None:
    api, replicas = pair
    ids = [api.upload([("a.txt", b"abc")], ALICE).get_json()["id"] for _ in range(4)]

    assert [set(replica.uploads) for replica in replicas] == [{ids[0], ids[2]}, {ids[1], ids[3]}]
    assert api.queue.replicas == ["geo-0", "geo-1", "geo-0", "geo-1"]
    for upload_id in ids:
        assert api.client.get(f"/v1/uploads/{upload_id}", headers=ALICE).status_code == 200


def test_an_upload_on_a_replica_that_is_down_is_503_not_404(
        pair: tuple[Mounted, list[FakeGeo]]) -> None:
    api, replicas = pair
    upload_id = api.upload([("a.txt", b"abc")], ALICE).get_json()["id"]
    replicas[0].failure = GeoUnreachable(502, "geo service unreachable or broke off: refused")

    for method in ("get", "delete"):
        response = getattr(api.client, method)(f"/v1/uploads/{upload_id}", headers=ALICE)
        assert_problem(response, 503, "replica-unavailable")
        assert int(response.headers["Retry-After"]) > 0
    assert upload_id in replicas[0].uploads


def test_no_replica_that_can_take_an_upload_is_503(
        pair: tuple[Mounted, list[FakeGeo]]) -> None:
    api, replicas = pair
    for replica in replicas:
        replica.failure = GeoUnreachable(502, "refused")

    response = api.upload([("a.txt", b"abc")], ALICE)

    assert_problem(response, 503, "no-replica")
    assert int(response.headers["Retry-After"]) > 0
    assert api.queue.jobs == []


def _nested_metadata(depth: int) -> str:
    """An object ``depth`` levels deep, its inner levels arrays to keep it short."""
    return '{"a":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


BAD_METADATA = [_nested_metadata(MAX_METADATA_DEPTH + 1), _nested_metadata(962),
                _nested_metadata(10_000), '{"x": NaN}', '{"x": [Infinity]}',
                '{"x": {"y": -Infinity}}']
BAD_METADATA_IDS = ["depth-33", "depth-962", "depth-10000", "nan", "infinity", "-infinity"]


@pytest.mark.parametrize("metadata", BAD_METADATA, ids=BAD_METADATA_IDS)
def test_metadata_too_deep_or_not_finite_is_400_naming_it_and_logs_no_error(
        api: Mounted, caplog: pytest.LogCaptureFixture, metadata: str) -> None:
    with caplog.at_level(logging.INFO):
        response = api.upload([("a.txt", b"abc")], ALICE, metadata=metadata)

    assert assert_problem(response, 400, "bad-form")["detail"].startswith("metadata ")
    assert api.queue.jobs == [] and api.geo.uploads == {}
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_metadata_may_nest_to_the_documented_depth(api: Mounted) -> None:
    text = _nested_metadata(MAX_METADATA_DEPTH)
    response = api.upload([("a.txt", b"abc")], ALICE, metadata=text)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert api.queue.jobs[0][2] == json.loads(text)
