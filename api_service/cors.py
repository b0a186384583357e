"""CORS on the upload routes: browser apps of the origins in ``HANDOFF_CORS_ORIGINS`` may use them.

Without the setting the routes send no CORS header at all, and a browser
keeps them to pages of their own origin. A preflight (``OPTIONS`` with
``Origin`` and ``Access-Control-Request-Method``) from a listed origin is
answered here, before anyone is authenticated: a browser sends no token
with it. Every other answer to a listed origin, a problem+json refusal
too, names that origin and lets the page read tus's headers. An origin not
listed gets nothing, so its browser refuses to hand the page the answer.

The hooks sit on the extension's blueprint: a host app that mounts
:class:`api_service.Handoff` gets them on the upload routes, and its own
routes keep whatever CORS policy it has.
"""

from flask import Blueprint, Response, request

from api_service.state import current_state

ALLOWED_METHODS = ("POST", "GET", "HEAD", "PATCH", "DELETE", "OPTIONS")
# What tus clients send, and the bearer token.
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Tus-Resumable", "Upload-Length",
                   "Upload-Metadata", "Upload-Offset", "Upload-Checksum", "Upload-Defer-Length",
                   "Upload-Concat")
# What a tus client reads from an answer; a browser hides every other header from the page.
EXPOSED_HEADERS = ("Location", "Upload-Offset", "Upload-Length", "Upload-Expires",
                   "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size",
                   "Tus-Checksum-Algorithm", "Upload-Concat")
# Seconds a browser may reuse a preflight's answer; Chromium caps it at two hours.
MAX_AGE = 7200


def register(bp: Blueprint) -> None:
    """Answer preflights first, ahead of the blueprint's other hooks, and mark every answer."""
    bp.before_request(answer_preflight)
    bp.after_request(mark_response)


def answer_preflight() -> Response | None:
    """The preflight of a listed origin, answered at once; anything else goes on to its route."""
    if (request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers
            or _allowed_origin() is None):
        return None
    response = Response(status=204, headers={
        "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
        "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
        "Access-Control-Max-Age": str(MAX_AGE)})
    del response.headers["Content-Type"]
    return response


def mark_response(response: Response) -> Response:
    """Name a listed origin on the answer; with CORS on, say the answer depends on the origin.

    The origin itself, never ``*``: a host's ``authenticate`` may read a
    cookie, which a browser sends to a named origin only
    (``Access-Control-Allow-Credentials``).
    """
    if not current_state().settings.cors_origins:
        return response
    response.vary.add("Origin")
    origin = _allowed_origin()
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
    return response


def _allowed_origin() -> str | None:
    origin = request.headers.get("Origin")
    return origin if origin in current_state().settings.cors_origins else None
