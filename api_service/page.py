"""The upload page at ``/`` of the standalone service: a browser's way to send files with tus.

It is static but for the installed purposes and the URLs, which follow the
service's mount (``SCRIPT_NAME``) and the upload routes' prefix. The page
is Uppy's Dashboard with its tus plugin, served from this package's static
folder like the page's own script and styles, so it works without any
other site; its Content-Security-Policy says as much to the browser.
"""

from collections.abc import Iterable

from flask import Blueprint, Flask, Response, current_app, render_template

PURPOSES = "handoff.page.purposes"
# Scripts and styles only from the API itself, never inline; Uppy styles elements through the
# DOM, which a policy allows. Images: Uppy's icons are data: URLs, its thumbnails blob: URLs.
# The page takes a token, so no other site may frame it and dress it up.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:",
    "connect-src 'self'", "form-action 'none'", "base-uri 'none'", "frame-ancestors 'none'"))
SECURITY_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                    "X-Content-Type-Options": "nosniff"}
bp = Blueprint("page", __name__, template_folder="templates")


def register(app: Flask, purposes: Iterable[str]) -> None:
    """Serve the page on ``app``, offering ``purposes`` (those the API was started with)."""
    app.extensions[PURPOSES] = sorted(purposes)
    app.register_blueprint(bp)


@bp.get("/")
def upload_page() -> Response:
    page = render_template("upload.html", purposes=current_app.extensions[PURPOSES])
    return Response(page, mimetype="text/html", headers=SECURITY_HEADERS)
