"""The upload relay most people would write first: a baseline, never a product.

It uses Flask the obvious way: ``request.files`` parses the whole body,
spooling every file over 500 kB to a temporary file on this service's disk,
and only then is each file sent on to the geo service with requests-toolbelt's
``MultipartEncoder``, read back from the spool. The benchmark runs it under
the same gunicorn settings as the API so the two differ only in the byte path.

It does not hash and does not enqueue a job: both would only make it slower,
and the comparison is about how the bytes travel.
"""

import os
import uuid

import requests
from flask import Flask, Response, jsonify, request
from requests_toolbelt import MultipartEncoder

GEO_TIMEOUT = (5.0, 600.0)


def create_app() -> Flask:
    """The app, configured from ``HANDOFF_GEO_URL`` and ``HANDOFF_GEO_SECRET``."""
    app = Flask("naive")
    app.config["MAX_CONTENT_LENGTH"] = None
    geo_url = os.environ["HANDOFF_GEO_URL"].rstrip("/")
    auth = {"Authorization": f"Bearer {os.environ['HANDOFF_GEO_SECRET']}"}

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.post("/v1/uploads")
    def upload() -> tuple[Response, int]:
        purpose = request.form.get("purpose", "raw")
        stored = []
        for field_name, storage in request.files.items(multi=True):
            encoder = MultipartEncoder([
                ("purpose", purpose),
                (field_name, (storage.filename, storage.stream, storage.mimetype)),
            ])
            response = requests.post(f"{geo_url}/uploads/{uuid.uuid4()}", data=encoder,
                                     headers={**auth, "Content-Type": encoder.content_type},
                                     timeout=GEO_TIMEOUT)
            if response.status_code != 201:
                return jsonify(error=f"geo service answered {response.status_code}"), 502
            stored.extend(response.json()["files"])
        if not stored:
            return jsonify(error="no file"), 400
        return jsonify(files=stored), 202

    return app
