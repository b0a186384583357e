"""gunicorn's own refusals as problem+json, like every other answer of the services.

gunicorn refuses some requests before an application sees them: a bad
request line (400), a request line over ``limit_request_line`` (414),
headers over their limits (431) and the like. Every worker class reports
them through ``Worker.handle_error``, which picks the status and then calls
``gunicorn.util.write_error`` to write an HTML page. Replacing that one
function keeps gunicorn's choice of status and message and changes only the
format, whatever the worker class.
"""

import json
import socket

from gunicorn import util

from handoff.problems import MEDIA_TYPE, Problem


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Write gunicorn's refusal as an RFC 9457 problem, then let gunicorn close the connection."""
    kind = reason.lower().replace(" ", "-")
    body = json.dumps(Problem(status_int, kind, mesg or reason, title=reason).body()).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\n"
            "Connection: close\r\n"
            f"Content-Type: {MEDIA_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    """Make gunicorn write its refusals with :func:`write_problem`; call it in the master."""
    util.write_error = write_problem
