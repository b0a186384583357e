"""The OpenAPI document served at ``/openapi.json`` is valid and covers exactly the app's routes.

The document is written by hand, so it can drift from the code: a new
route nobody described, or a described one that was removed. Comparing it
with the routes Flask really registers catches both without a running stack.
Only the purpose list is not the file's: it is what is installed.
"""

import copy
import json
import re
import subprocess
import sys
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from api_service.app import OPENAPI, create_app
from handoff.config import Settings
from handoff.processors import installed
from handoff.states import PUBLIC_STATUS, PUBLIC_STATUSES, State

# Flask adds these to every rule on its own; the document describes what the
# routes themselves serve, and these where they mean something (tus's HEAD and OPTIONS).
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
# Open to anyone, as tus discovery and a CORS preflight must be.
OPEN_OPERATIONS = {("/v1/uploads", "options")}
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(OPENAPI.read_text())


@pytest.fixture(scope="module")
def app() -> Flask:
    """The real app; building it reads settings only and connects to nothing."""
    return create_app(Settings(geo_secret="x", redis_url="redis://127.0.0.1:1/0"))


def _openapi_path(rule: str) -> str:
    """A Flask rule in OpenAPI's spelling: ``/a/<b>`` and ``/a/<string:b>`` are ``/a/{b}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _app_operations(app: Flask, implicit: bool = False) -> set[tuple[str, str]]:
    """The operations the app serves; with ``implicit``, Flask's own HEAD and OPTIONS too."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        methods = rule.methods or set()
        for method in methods if implicit else methods - IMPLICIT_METHODS:
            operations.add((_openapi_path(rule.rule), method.lower()))
    return operations


def _documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return {(path, method) for path, item in document["paths"].items()
            for method in item if method in methods}


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]):
    """Clients and generators reject an invalid document, often with unhelpful errors."""
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_the_app_serves_this_file_with_the_installed_purposes(app: Flask,
                                                              document: dict[str, Any]):
    response = app.test_client().get("/openapi.json")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    served = response.get_json()
    purposes = served["components"]["schemas"]["Purpose"].pop("enum")
    assert purposes == sorted(installed({}).purposes)
    assert {"raw", "shapefile", "geojson", "geopackage", "words"} <= set(purposes)
    expected = copy.deepcopy(document)
    expected["components"]["schemas"]["Purpose"].pop("enum")
    assert served == expected


def test_the_served_document_is_valid_openapi_3_1(app: Flask):
    validate(app.test_client().get("/openapi.json").get_json(), cls=OpenAPIV31SpecValidator)


def test_the_api_lists_purposes_without_importing_any_processor():
    """Reader libraries (pyshp, ijson) stay out of the API's processes."""
    script = """
import sys
from api_service.app import create_app
from handoff.config import Settings
create_app(Settings(geo_secret="x", redis_url="redis://127.0.0.1:1/0"))
print(sorted(m for m in ("shapefile", "ijson", "geo_service.processors.raw") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_documented_statuses_are_the_public_ones_in_order(document: dict[str, Any]):
    schemas = document["components"]["schemas"]
    assert schemas["UploadStatus"]["properties"]["status"]["enum"] == list(PUBLIC_STATUSES)
    assert schemas["UploadAccepted"]["properties"]["status"]["const"] == PUBLIC_STATUS[State.QUEUED]


def test_every_route_of_the_app_is_documented(app: Flask, document: dict[str, Any]):
    """A route added to the code must be described too."""
    missing = _app_operations(app) - _documented_operations(document)

    assert not missing, f"routes served but not documented: {sorted(missing)}"


def test_every_documented_operation_is_served(app: Flask, document: dict[str, Any]):
    """A route removed or renamed in the code must not linger in the document."""
    stale = _documented_operations(document) - _app_operations(app, implicit=True)

    assert not stale, f"operations documented but not served: {sorted(stale)}"


def test_every_error_answer_is_a_problem_document(document: dict[str, Any]):
    """The API promises problem+json for every rejection; the document must say the same."""
    responses = document["components"]["responses"]
    wrong = []
    for path, method in _documented_operations(document):
        for status, answer in document["paths"][path][method]["responses"].items():
            if not status.startswith(("4", "5")) or path == "/readyz":
                continue
            if "$ref" in answer:
                answer = responses[answer["$ref"].rsplit("/", 1)[-1]]
            if set(answer.get("content", {})) != {PROBLEM}:
                wrong.append(f"{method.upper()} {path} {status}")

    assert not wrong, f"error answers not described as {PROBLEM}: {wrong}"


def test_the_upload_routes_declare_the_optional_bearer_scheme(document: dict[str, Any]):
    """Bearer when tokens are configured, open otherwise: both alternatives are listed."""
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, method in _documented_operations(document):
        security = document["paths"][path][method]["security"]
        if path.startswith("/v1/") and (path, method) not in OPEN_OPERATIONS:
            assert {"bearerAuth": []} in security and {} in security, (path, security)
        else:
            assert security == [], (path, security)
