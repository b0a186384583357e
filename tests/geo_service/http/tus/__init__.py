"""Resumable uploads on the geo service, a test module per verb (as tusd's handler tests).

The helpers send what the API sends; the fixtures (``../conftest.py``) give
an app on a temporary store.
"""

import base64
import hashlib
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from handoff.tus import OFFSET_MEDIA_TYPE
from tests.geo_service.http import MAX_SIZE, SECRET  # noqa: F401 - for the verb modules
from tests.support.problems import assert_problem as problem  # noqa: F401 - the one check

AUTH = {"Authorization": f"Bearer {SECRET}", "Handoff-Tenant": "alice"}
UPLOAD_ID = "4a5b6c7d-1e2f-4a3b-8c9d-0e1f2a3b4c5d"


def create(client: FlaskClient, length: int | None = 10, upload_id: str = UPLOAD_ID,
           **info: Any) -> TestResponse:
    body = {"purpose": "raw", "metadata": {"project": "p"}, "filename": "a.bin",
            "content_type": "application/octet-stream", "length": length, **info}
    return client.put(f"/uploads/{upload_id}", json=body, headers=AUTH)


def patch(client: FlaskClient, offset: int, data: bytes, upload_id: str = UPLOAD_ID,
          headers: dict[str, str] | None = None) -> TestResponse:
    return client.patch(f"/uploads/{upload_id}", data=data,
                        headers={**AUTH, "Content-Type": OFFSET_MEDIA_TYPE,
                                 "Upload-Offset": str(offset), **(headers or {})})


def offset(client: FlaskClient, upload_id: str = UPLOAD_ID) -> TestResponse:
    return client.get(f"/uploads/{upload_id}/offset", headers=AUTH)


def checksum(data: bytes, algorithm: str = "sha1") -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
