"""The one error helper: RFC 9457 problem+json answers for both services.

Handlers raise :class:`Problem`; the registered error handler renders it.
Unexpected exceptions become a 500 problem without a stack trace. The
standalone services register the handlers on the whole app; the embeddable
API on its blueprint alone, so a host app keeps its own error pages.
"""

import logging
from typing import Any

from flask import Blueprint, Flask, Response
from werkzeug.exceptions import HTTPException

from handoff.jsontext import dumps

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://handoff.dev/problems/"


# kind (the slug in the ``type`` URI) -> title: one title per kind, whichever
# service or status answers with it.
TITLES: dict[str, str] = {
    "bad-form": "Malformed form",
    "bad-request": "Bad request",
    "busy": "Service busy",
    "cancelled": "Upload cancelled",
    "checksum-mismatch": "Checksum mismatch",
    "client-timeout": "Request Timeout",
    "exists": "Upload exists",
    "final-upload": "Forbidden",
    "geo-error": "Refused by the geo service",
    "geo-mismatch": "Bad gateway",
    "geo-unavailable": "Bad gateway",
    "in-use": "Upload in use",
    "incomplete-body": "Incomplete body",
    "internal-error": "Internal Server Error",
    "invalid-id": "Invalid upload id",
    "invalid-tenant": "Invalid tenant",
    "locked": "Upload locked",
    "no-file": "No file",
    "no-replica": "No geo replica available",
    "not-found": "Not Found",
    "not-multipart": "Unsupported media type",
    "offset-mismatch": "Offset mismatch",
    "processing": "Upload is processing",
    "queue-unavailable": "Queue unavailable",
    "replica-unavailable": "Geo replica unavailable",
    "shutting-down": "Service stopping",
    "stopped": "Append stopped",
    "storage-full": "Insufficient storage",
    "store-unavailable": "Upload store unavailable",
    "too-large": "Upload too large",
    "too-slow": "Request Timeout",
    "unauthorized": "Unauthorized",
    "unsupported-media-type": "Unsupported media type",
    "unsupported-version": "Precondition Failed",
}


class Problem(Exception):
    """An answer the client should get instead of the normal response.

    ``kind`` is the stable slug in the ``type`` URI and picks the title from
    :data:`TITLES`; ``detail`` is for humans; ``extra`` members
    (``upload_id`` and the like) are added as-is; ``headers`` go out with the
    answer (``WWW-Authenticate`` for a 401). ``title`` is only for refusals
    whose title is not ours to choose: werkzeug's and gunicorn's.
    """

    def __init__(self, status: int, kind: str, detail: str, *,
                 headers: dict[str, str] | None = None, title: str | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title or TITLES[kind]
        self.detail = detail
        self.headers = headers or {}
        self.extra = {key: value for key, value in extra.items() if value is not None}

    def body(self) -> dict[str, Any]:
        return {
            "type": TYPE_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }

    def response(self) -> Response:
        return Response(dumps(self.body()), status=self.status, mimetype=MEDIA_TYPE,
                        headers=self.headers)


def bad_request(detail: str) -> Problem:
    """A request that names what it wants wrongly: ``detail`` says what and how."""
    return Problem(400, "bad-request", detail)


def not_found(upload_id: str | None, detail: str = "no upload with this id") -> Problem:
    """No such upload, or not one the asker may see: the two are answered alike."""
    return Problem(404, "not-found", detail, upload_id=upload_id)


def _from_http_exception(exc: HTTPException) -> Response:
    kind = (exc.name or "error").lower().replace(" ", "-")
    problem = Problem(exc.code or 500, kind, exc.description or exc.name, title=exc.name)
    response = problem.response()
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers.add(name, value)
    return response


def _from_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return Problem(500, "internal-error", "unexpected error").response()


def register(scope: Flask | Blueprint) -> None:
    """Make every error of ``scope``, an app or a blueprint, answer with problem+json.

    On a blueprint, Flask consults these handlers only for requests routed
    to it: a URL that matches no route, or a method a route does not
    serve, is the app's to answer.
    """
    scope.register_error_handler(Problem, lambda exc: exc.response())
    scope.register_error_handler(HTTPException, _from_http_exception)
    scope.register_error_handler(Exception, _from_unexpected)
