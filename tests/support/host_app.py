"""A host application with pages, errors and users of its own, mounting the upload API.

It is what an existing Flask app that embeds handoff looks like: its own
404 page, its own users (the ``X-Host-User`` header, trusted as a proxy in
front of it would set it), and the upload API under ``/shared``. Served by
gunicorn as ``tests.support.host_app:create_app()`` with a stack's
``HANDOFF_*`` environment, or built in-process with explicit settings.
"""

from flask import Flask, Request

from api_service import Handoff
from api_service.tenants import unauthorized
from handoff.config import Settings

USER_HEADER = "X-Host-User"
USERS = frozenset({"alice", "bob"})
PREFIX = "/shared"
# The host's own limit for the bodies of its own routes; uploads are handoff's to limit.
MAX_CONTENT_LENGTH = 64 * 1024
NOT_FOUND_PAGE = "<!doctype html><h1>host: not found</h1>"


def host_user(request: Request) -> str:
    """The host's users are the tenants; anyone else is refused."""
    user = request.headers.get(USER_HEADER, "")
    if user not in USERS:
        raise unauthorized(f"the {USER_HEADER} header must name a user of the host",
                           challenge='HostUser realm="host"')
    return user


def create_app(settings: Settings | None = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH

    @app.get("/")
    def home() -> str:
        return "host: home"

    @app.get("/broken")
    def broken() -> str:
        raise RuntimeError("the host's own bug")

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[str, int]:
        return NOT_FOUND_PAGE, 404

    Handoff(app, settings=settings, authenticate=host_user, url_prefix=PREFIX)
    return app
