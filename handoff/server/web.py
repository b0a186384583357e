"""What both Flask services share: settings, problem answers, health routes."""

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider

from handoff import problems
from handoff.auth import bearer_token, token_allowed
from handoff.config import Settings
from handoff.fields import MAX_METADATA_DEPTH
from handoff.jsontext import loads
from handoff.multipart import MalformedForm, NotMultipart, boundary_of
from handoff.problems import Problem
from handoff.server import metrics
from handoff.server.logs import setup_logging


def make_app(name: str, settings: Settings, ready: Callable[[], dict[str, str]]) -> Flask:
    """A standalone service's app: its logging, problem+json for every error, health routes.

    It holds the settings (:func:`current_settings`) and serves /healthz,
    /readyz and /metrics. It is the whole app, so it may take over the root
    logger and every error; what is mounted into someone else's app may not.

    ``ready`` returns a mapping of dependency -> error message; empty means ready.
    """
    setup_logging(settings.log_level, name)
    app = Flask(name)
    app.json = JSONProvider(app)
    app.config["HANDOFF"] = settings
    # Also checked in the background for the master's health port (handoff/server/health.py).
    app.extensions["handoff.ready"] = ready
    problems.register(app)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        failures = ready()
        if failures:
            return jsonify(status="unavailable", failures=failures), 503
        return jsonify(status="ready"), 200

    @app.get("/metrics")
    def metrics_text() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    return app


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON for the services, RFC 8259 both ways (see :mod:`handoff.jsontext`).

    No body a service reads nests deeper than metadata inside it, one
    level below the top.
    """

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return super().dumps(obj, **{**kwargs, "allow_nan": False})

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s.decode() if isinstance(s, bytes) else s, MAX_METADATA_DEPTH + 1)


def current_settings() -> Settings:
    return current_app.config["HANDOFF"]


def require_bearer(allowed: Iterable[str], what: str) -> None:
    """Refuse the request with 401 unless it carries one of the ``allowed`` tokens."""
    if not token_allowed(bearer_token(request.headers.get("Authorization")), allowed):
        raise Problem(401, "unauthorized", f"a valid bearer {what} is required",
                      headers={"WWW-Authenticate": "Bearer"})


def multipart_boundary(max_size: int, upload_id: str | None = None) -> bytes:
    """Check an upload request's length and media type before its body is read.

    A Content-Length over ``max_size`` is refused at once (413), so a client
    learns it before sending gigabytes; then the boundary of a
    multipart/form-data body (415 for another type, 400 without a boundary).
    """
    if (request.content_length or 0) > max_size:
        raise Problem(413, "too-large",
                      f"the request body exceeds {max_size} bytes", upload_id=upload_id)
    try:
        return boundary_of(request.content_type)
    except NotMultipart as exc:
        raise Problem(415, "not-multipart", str(exc)) from None
    except MalformedForm as exc:
        raise Problem(400, "bad-form", str(exc)) from None


# Seconds a client refused for a full server is told to wait.
RETRY_AFTER = 10


class UploadSlots:
    """At most ``size`` uploads in flight per web process; the rest are refused at once.

    A refusal needs a connection too: keeping uploads below the worker's
    connection limit (``HANDOFF_WEB_CONNECTIONS``) is what lets a full server
    answer 503 quickly instead of leaving new clients hanging in the listen
    backlog, and lets ``/healthz`` answer whatever the uploads do.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = threading.BoundedSemaphore(size)

    @contextmanager
    def hold(self, upload_id: str | None = None) -> Iterator[None]:
        if not self._free.acquire(blocking=False):
            raise Problem(503, "busy",
                          f"all {self.size} upload slots of this server process are taken; "
                          "retry later", headers={"Retry-After": str(RETRY_AFTER)},
                          upload_id=upload_id)
        try:
            yield
        finally:
            self._free.release()

