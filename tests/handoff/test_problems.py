"""problem+json answers for raised problems, HTTP errors and unexpected crashes."""

import ast
import logging
from pathlib import Path

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient

from handoff import problems
from handoff.problems import MEDIA_TYPE, TYPE_BASE, Problem
from tests.support.problems import assert_problem

UPLOAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.fixture
def client() -> FlaskClient:
    app = Flask(__name__)
    problems.register(app)

    @app.get("/problem")
    def problem() -> str:
        raise Problem(409, "exists", "already there", upload_id=UPLOAD_ID)

    @app.get("/problem-without-id")
    def problem_without_id() -> str:
        raise Problem(400, "bad-form", "no file part", upload_id=None)

    @app.get("/missing")
    def missing() -> str:
        abort(404)

    @app.get("/described")
    def described() -> str:
        abort(413, description="over 5GiB")

    @app.get("/crash")
    def crash() -> str:
        raise RuntimeError("db password is hunter2")

    @app.get("/only-get")
    def only_get() -> str:
        return "ok"

    return app.test_client()


def test_raised_problem(client: FlaskClient) -> None:
    response = client.get("/problem")
    assert response.status_code == 409
    assert response.mimetype == MEDIA_TYPE == "application/problem+json"
    assert response.get_json(force=True) == {
        "type": TYPE_BASE + "exists",
        "title": "Upload exists",
        "status": 409,
        "detail": "already there",
        "upload_id": UPLOAD_ID,
    }


def test_extra_members_that_are_none_are_left_out(client: FlaskClient) -> None:
    body = client.get("/problem-without-id").get_json(force=True)
    assert "upload_id" not in body
    assert body["status"] == 400
    assert body["type"] == "https://handoff.dev/problems/bad-form"


def test_abort_404(client: FlaskClient) -> None:
    assert assert_problem(client.get("/missing"), 404, "not-found")["title"] == "Not Found"


def test_an_unknown_route_is_a_problem_too(client: FlaskClient) -> None:
    assert_problem(client.get("/no/such/route"), 404, "not-found")


def test_abort_with_a_description_keeps_it_as_detail(client: FlaskClient) -> None:
    body = assert_problem(client.get("/described"), 413, "request-entity-too-large")
    assert body["detail"] == "over 5GiB"


def test_unexpected_error_is_a_500_without_its_details(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="handoff.problems"):
        response = client.get("/crash")
    assert response.status_code == 500
    assert response.mimetype == MEDIA_TYPE
    assert response.get_json(force=True) == {
        "type": TYPE_BASE + "internal-error",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "unexpected error",
    }
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert "hunter2" not in text
    assert "RuntimeError" not in text
    assert any(record.exc_info for record in caplog.records), "the crash is logged"


def test_method_not_allowed_is_a_problem(client: FlaskClient) -> None:
    assert_problem(client.post("/only-get"), 405, "method-not-allowed")


def test_method_not_allowed_keeps_the_allow_header(client: FlaskClient) -> None:
    response = client.post("/only-get")
    assert set(response.headers.get("Allow", "").split(", ")) >= {"GET", "HEAD"}


def test_problem_body_without_an_app() -> None:
    problem = Problem(507, "storage-full", "disk is full", upload_id="x", n=3)
    assert problem.body() == {
        "type": TYPE_BASE + "storage-full",
        "title": "Insufficient storage",
        "status": 507,
        "detail": "disk is full",
        "upload_id": "x",
        "n": 3,
    }
    assert str(problem) == "disk is full"


def test_a_problem_carries_its_headers() -> None:
    response = Problem(401, "unauthorized", "token needed",
                       headers={"WWW-Authenticate": "Bearer"}).response()
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.mimetype == MEDIA_TYPE
    assert "headers" not in response.get_json()


def test_the_title_comes_from_the_kind_unless_it_is_someone_elses() -> None:
    assert Problem(503, "busy", "slots taken").title == "Service busy"
    assert Problem(431, "request-header-fields-too-large", "too many headers",
                   title="Request Header Fields Too Large").title == (
        "Request Header Fields Too Large")
    with pytest.raises(KeyError, match="no-such-kind"):
        Problem(400, "no-such-kind", "a kind without a title is a mistake")


def test_the_old_title_argument_is_refused_not_taken_for_the_detail() -> None:
    with pytest.raises(TypeError):
        Problem(409, "exists", "Upload exists", "already there")


# -- every kind the services raise has its title --------------------------------

PRODUCT = ("api_service", "geo_service", "gc", "handoff")
# callable -> position of its kind argument
RAISERS = {"Problem": 1, "RelayError": 1, "ClientTooSlow": 0}


def _raised_kinds(path: Path) -> set[str]:
    kinds = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        position = RAISERS.get(str(name))
        if position is None or len(node.args) <= position:
            continue
        kind = node.args[position]
        if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
            kinds.add(kind.value)
    return kinds


def test_every_kind_the_services_raise_has_a_title() -> None:
    root = Path(problems.__file__).resolve().parents[1]
    raised = set().union(*(_raised_kinds(path) for package in PRODUCT
                           for path in (root / package).rglob("*.py")))
    assert {"no-file", "too-slow", "not-found", "in-use", "internal-error"} <= raised
    assert raised - set(problems.TITLES) == set()
