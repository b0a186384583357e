"""A writer whose sender went silent lets go when another request asks for the upload.

The stale writer reads its body from one end of a socket pair that the test
never writes to again, as from a client whose network went away: only the
stop request can end its read.
"""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from geo_service.store import LockWait, UploadStore
from handoff.tus import OFFSET_MEDIA_TYPE
from tests.geo_service.http.tus import AUTH, UPLOAD_ID, create, offset, patch, problem, sha256
from tests.geo_service.store import disk
from tests.support.polling import eventually


@contextmanager
def _silent_writer(client: FlaskClient, store: UploadStore, sent: bytes,
                   announced: int) -> Iterator[list[TestResponse]]:
    """A PATCH at offset 0 announcing ``announced`` bytes that sends ``sent`` and falls silent."""
    ours, theirs = socket.socketpair()
    answers: list[TestResponse] = []

    def send() -> None:
        answers.append(client.patch(
            f"/uploads/{UPLOAD_ID}",
            headers={**AUTH, "Content-Type": OFFSET_MEDIA_TYPE, "Upload-Offset": "0"},
            environ_overrides={"wsgi.input": ours.makefile("rb", buffering=0),
                               "CONTENT_LENGTH": str(announced), "gunicorn.socket": ours}))

    writer = threading.Thread(target=send)
    writer.start()
    theirs.sendall(sent)
    try:
        assert eventually(lambda: disk.file_path(store, UPLOAD_ID, 0).stat().st_size == len(sent))
        yield answers
    finally:
        writer.join(timeout=30)
        ours.close()
        theirs.close()
    assert not writer.is_alive()


def test_asking_for_the_offset_stops_the_stale_writer(client: FlaskClient, store: UploadStore):
    create(client, length=10)
    with _silent_writer(client, store, b"01234", announced=10) as answers:
        assert offset(client).get_json()["offset"] == 5
    problem(answers[0], 409, "stopped")
    assert not (disk.stop_path(store, UPLOAD_ID)).exists()


def test_the_next_append_takes_over_and_completes_the_upload(client: FlaskClient,
                                                             store: UploadStore):
    create(client, length=10)
    with _silent_writer(client, store, b"01234", announced=10) as answers:
        resumed = patch(client, 5, b"56789")
    problem(answers[0], 409, "stopped")
    assert resumed.get_json()["state"] == "complete"
    assert store.status(UPLOAD_ID)["manifest"]["files"][0]["sha256"] == sha256(b"0123456789")


def test_an_append_with_a_stale_offset_still_gets_the_durable_one(client: FlaskClient,
                                                                  store: UploadStore):
    create(client, length=10)
    with _silent_writer(client, store, b"012", announced=10):
        assert problem(patch(client, 0, b"0123456789"), 409, "offset-mismatch")["offset"] == 3


def test_cancelling_ends_a_silent_writer_and_removes_the_upload(client: FlaskClient,
                                                                store: UploadStore):
    create(client, length=10)
    with _silent_writer(client, store, b"01234", announced=10) as answers:
        assert client.delete(f"/uploads/{UPLOAD_ID}", headers=AUTH).status_code == 204
    problem(answers[0], 409, "cancelled")
    assert not store.exists(UPLOAD_ID)


def test_a_holder_that_never_lets_go_is_423(client: FlaskClient, store: UploadStore,
                                            monkeypatch: pytest.MonkeyPatch):
    """A worker or the sweeper holds locks without watching for stops; nobody waits forever."""
    monkeypatch.setattr(LockWait, "TAKE_OVER", 0.2)
    create(client, length=10)
    with store.lock(UPLOAD_ID):
        problem(offset(client), 423, "locked")
        problem(patch(client, 0, b"0"), 423, "locked")
    assert not (disk.stop_path(store, UPLOAD_ID)).exists()
    assert patch(client, 0, b"0").get_json()["offset"] == 1
