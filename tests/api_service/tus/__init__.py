"""tus on the public API, a test module per verb (as tusd's handler tests).

The API's real geo client is used, with its HTTP calls answered in process
by a real geo app on a temporary store (:class:`InProcessGeo`): what is
checked is the API's protocol and its contract with the geo service, with
no server running.
"""

import base64
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from handoff.tus import OFFSET_MEDIA_TYPE
from tests.support.problems import assert_problem

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}
TUS = {"Tus-Resumable": "1.0.0"}
MAX_SIZE = 1024 * 1024


def metadata(purpose: str | None = "raw", filename: str | None = "plan.bin",
             **more: str) -> str:
    pairs = {"purpose": purpose, "filename": filename, **more}
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                    for key, value in pairs.items() if value is not None)


def create(client: FlaskClient, length: int | None = 10, headers: dict[str, str] | None = None,
           data: bytes | None = None, **pairs: Any) -> TestResponse:
    sized = {"Upload-Length": str(length)} if length is not None else {"Upload-Defer-Length": "1"}
    body = {"Content-Type": OFFSET_MEDIA_TYPE} if data is not None else {}
    return client.post("/v1/uploads", data=data,
                       headers={**ALICE, **TUS, **sized, **body,
                                "Upload-Metadata": metadata(**pairs), **(headers or {})})


def location(client: FlaskClient, length: int | None = 10, **pairs: Any) -> str:
    answer = create(client, length, **pairs)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return answer.headers["Location"]


def patch(client: FlaskClient, url: str, offset: int, data: bytes,
          headers: dict[str, str] | None = None) -> TestResponse:
    return client.patch(url, data=data, headers={**ALICE, **TUS, "Content-Type": OFFSET_MEDIA_TYPE,
                                                 "Upload-Offset": str(offset),
                                                 **(headers or {})})


def head(client: FlaskClient, url: str, headers: dict[str, str] | None = None) -> TestResponse:
    return client.head(url, headers={**ALICE, **TUS, **(headers or {})})


def problem(response: TestResponse, status: int, kind: str) -> dict[str, Any]:
    """The one problem+json check, and the tus version every answer of the API names."""
    body = assert_problem(response, status, kind)
    assert response.headers["Tus-Resumable"] == "1.0.0"
    return body
