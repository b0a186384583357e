"""Application factory for the standalone public API (run under gunicorn)."""

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flask import Flask, Response

from api_service import page
from api_service.extension import Handoff
from api_service.state import current_state
from api_service.tenants import Authenticate
from handoff.config import Settings, load_or_exit
from handoff.processors import installed_or_exit
from handoff.server.web import make_app

OPENAPI = Path(__file__).with_name("openapi.json")


def create_app(settings: Settings | None = None,
               authenticate: Authenticate | None = None) -> Flask:
    """The API as its own service: upload routes under /v1, health, /openapi.json, a page at /.

    ``authenticate`` replaces the bearer tokens' "who is asking".
    """
    settings = settings or load_or_exit(need_secret=True)
    app = make_app("api_service", settings, lambda: current_state().ready())
    Handoff(app, settings=settings, authenticate=authenticate, url_prefix="/v1")
    purposes = installed_or_exit().purposes
    document = json.dumps(openapi_document(purposes))
    page.register(app, purposes)

    @app.get("/openapi.json")
    def openapi() -> Response:
        """The API's OpenAPI 3.1 description; open, like the health routes."""
        return Response(document, content_type="application/json")

    return app


def openapi_document(purposes: Iterable[str]) -> dict[str, Any]:
    """The description with the purposes installed here, read when the app starts.

    The geo service lists the same entry points for the purposes it
    accepts, so the enum and the refusals agree on one image.
    """
    document: dict[str, Any] = json.loads(OPENAPI.read_text())
    document["components"]["schemas"]["Purpose"]["enum"] = sorted(purposes)
    return document
