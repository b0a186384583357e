"""OPTIONS /v1/uploads: tus discovery, open to anyone."""

from flask.testing import FlaskClient

from tests.api_service.tus import MAX_SIZE


def test_the_server_says_what_it_supports_without_a_token(client: FlaskClient):
    answer = client.options("/v1/uploads")
    assert answer.status_code == 204
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    assert answer.headers["Tus-Version"] == "1.0.0"
    assert answer.headers["Tus-Extension"].split(",") == [
        "creation", "creation-with-upload", "creation-defer-length", "termination",
        "expiration", "checksum", "concatenation"]
    assert answer.headers["Tus-Max-Size"] == str(MAX_SIZE)
    assert answer.headers["Tus-Checksum-Algorithm"] == "sha1,sha256,md5"


def test_other_routes_still_need_a_token(client: FlaskClient):
    assert client.get("/v1/uploads/4a5b6c7d-1e2f-4a3b-8c9d-0e1f2a3b4c5d").status_code == 401


def test_a_tus_answer_is_all_headers(client: FlaskClient):
    assert "Content-Type" not in client.options("/v1/uploads").headers
