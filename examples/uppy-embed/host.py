"""A host application's own page that sends files to handoff with Uppy, from its own origin.

The page is the host's; the uploads go straight from the browser to
handoff (CORS: the host's origin is in ``HANDOFF_CORS_ORIGINS``), never
through the host. The host's backend only hands its page a token for the
signed-in user. Run it beside handoff (see README.md here)::

    HANDOFF_URL=http://127.0.0.1:8000 HANDOFF_TOKEN=alice-token \\
        flask --app host run --port 5000
"""

import os
from pathlib import Path

from flask import Flask, jsonify, render_template
from flask.typing import ResponseReturnValue


def create_app(handoff_url: str | None = None, token: str | None = None) -> Flask:
    """The host: its page at ``/`` and the token route that page asks."""
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    app.config["HANDOFF_URL"] = (handoff_url or os.environ["HANDOFF_URL"]).rstrip("/")
    app.config["HANDOFF_TOKEN"] = token or os.environ["HANDOFF_TOKEN"]

    @app.get("/")
    def page() -> ResponseReturnValue:
        return render_template("index.html", handoff=app.config["HANDOFF_URL"])

    @app.get("/handoff-token")
    def handoff_token() -> ResponseReturnValue:
        """A real host checks its own session here and answers with that user's handoff token
        (one of ``HANDOFF_API_TOKENS``), or a short-lived one its own backend obtained."""
        return jsonify(token=app.config["HANDOFF_TOKEN"])

    return app
