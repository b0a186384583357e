"""Application factory for the public API (run under gunicorn)."""

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flask import Flask, Response

from api_service.geo import GeoClient
from api_service.routes import bp
from api_service.tenants import Authenticate, bearer_authenticator
from handoff.config import Settings, load_or_exit
from handoff.jobs import JobQueue
from handoff.processors import installed_or_exit
from handoff.web import make_app

log = logging.getLogger("handoff.api")
OPENAPI = Path(__file__).with_name("openapi.json")


def create_app(settings: Settings | None = None,
               authenticate: Authenticate | None = None) -> Flask:
    """The API app; ``authenticate`` replaces the bearer tokens' "who is asking"."""
    settings = settings or load_or_exit(need_secret=True)
    geo = GeoClient(settings)
    queue = JobQueue(settings)

    def ready() -> dict[str, str]:
        failures = {"geo": geo.ready(), "redis": queue.ready()}
        return {name: error for name, error in failures.items() if error}

    app = make_app("api_service", settings, ready)
    app.extensions["handoff.geo"] = geo
    app.extensions["handoff.queue"] = queue
    app.extensions["handoff.authenticate"] = authenticate or bearer_authenticator(
        settings.api_tokens)
    app.config["MAX_CONTENT_LENGTH"] = None
    app.register_blueprint(bp)
    document = json.dumps(openapi_document(installed_or_exit().purposes))

    @app.get("/openapi.json")
    def openapi() -> Response:
        """The API's OpenAPI 3.1 description; open, like the health routes."""
        return Response(document, content_type="application/json")

    if authenticate is None and not settings.api_tokens:
        log.warning("HANDOFF_API_TOKENS is not set: the upload API is open to anyone, "
                    "as the tenant 'anonymous'")
    return app


def openapi_document(purposes: Iterable[str]) -> dict[str, Any]:
    """The description with the purposes installed here, read when the app starts.

    The geo service lists the same entry points for the purposes it
    accepts, so the enum and the refusals agree on one image.
    """
    document: dict[str, Any] = json.loads(OPENAPI.read_text())
    document["components"]["schemas"]["Purpose"]["enum"] = sorted(purposes)
    return document
