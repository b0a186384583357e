"""The upload page at ``/`` of the standalone service: a browser's way to send one file with tus.

It is static but for the installed purposes and the URLs, which follow the
service's mount (``SCRIPT_NAME``) and the upload routes' prefix. The page
sends the file with tus-js-client, served from this package's static
folder like the page's own script, so it works without any other site.
"""

from collections.abc import Iterable

from flask import Blueprint, Flask, current_app, render_template

PURPOSES = "handoff.page.purposes"
bp = Blueprint("page", __name__, template_folder="templates")


def register(app: Flask, purposes: Iterable[str]) -> None:
    """Serve the page on ``app``, offering ``purposes`` (those the API was started with)."""
    app.extensions[PURPOSES] = sorted(purposes)
    app.register_blueprint(bp)


@bp.get("/")
def upload_page() -> str:
    return render_template("upload.html", purposes=current_app.extensions[PURPOSES])
