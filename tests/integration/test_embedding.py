"""The upload API mounted in a host app of its own, on real processes end to end.

gunicorn serves ``tests/support/host_app.py`` (its pages, its users, the
API under ``/shared``) in front of a real geo service, valkey and worker.
"""

import hashlib
from pathlib import Path
from typing import Any

import pytest
import requests
from requests_toolbelt import MultipartEncoder

from geo_service.store import FileStore
from tests.faults import private_stack
from tests.geo_service.store import disk
from tests.support import host_app
from tests.support.hosting import serve_host
from tests.support.payloads import random_file
from tests.support.polling import eventually
from tests.support.problems import assert_problem
from tests.support.processes import Processes
from tests.support.stacks import Stack

ALICE = {"X-Host-User": "alice"}
BOB = {"X-Host-User": "bob"}


@pytest.fixture(scope="module")
def host(module_processes: Processes) -> tuple[Stack, str]:
    """The stack without its own API, and the URL of the host app in its place."""
    stack = private_stack(module_processes, {}, ("redis", "geo", "worker"))
    return stack, serve_host(stack)


def _upload(url: str, path: Path, headers: dict[str, str]) -> requests.Response:
    with path.open("rb") as handle:
        encoder = MultipartEncoder([("purpose", "raw"), ("metadata", '{"via": "host"}'),
                                    ("file", (path.name, handle, "application/octet-stream"))])
        return requests.post(f"{url}/shared/uploads", data=encoder, timeout=120,
                             headers={"Content-Type": encoder.content_type, **headers})


def _status(url: str, upload_id: str, headers: dict[str, str]) -> requests.Response:
    return requests.get(f"{url}/shared/uploads/{upload_id}", headers=headers, timeout=30)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def test_an_upload_through_the_host_is_processed_to_done(host: tuple[Stack, str],
                                                         tmp_path: Path) -> None:
    stack, url = host
    # Far over the host's own MAX_CONTENT_LENGTH, which is not the uploads' limit.
    path = random_file(tmp_path / "survey.bin", 8)

    response = _upload(url, path, ALICE)

    assert response.status_code == 202, response.text
    body = response.json()
    upload_id = body["id"]
    assert body["links"] == {"self": f"/shared/uploads/{upload_id}"}
    assert body["files"] == [{"name": "survey.bin", "size": path.stat().st_size,
                              "sha256": _sha256(path)}]
    final: dict[str, Any] = {}

    def finished() -> bool:
        final.update(_status(url, upload_id, ALICE).json())
        return final["status"] in ("done", "failed")

    assert eventually(finished, timeout=60), final
    assert final["status"] == "done", final
    assert final["metadata"] == {"via": "host"}
    assert final["result"]["files"][0]["sha256"] == _sha256(path)
    assert disk.file_path(FileStore(stack.uploads), upload_id).stat().st_size == path.stat().st_size
    assert_problem(_status(url, upload_id, BOB), 404, detail="no upload with this id")


def test_a_refusal_inside_the_mount_is_a_problem(host: tuple[Stack, str],
                                                 tmp_path: Path) -> None:
    _, url = host
    path = random_file(tmp_path / "a.bin", 1)

    response = _upload(url, path, {"X-Host-User": "mallory"})

    assert_problem(response, 401, detail="X-Host-User")
    assert response.headers["WWW-Authenticate"] == 'HostUser realm="host"'


@pytest.mark.parametrize("path", ["/nowhere", "/shared/nowhere"])
def test_the_hosts_404_page_is_unchanged(host: tuple[Stack, str], path: str) -> None:
    _, url = host

    response = requests.get(url + path, headers=ALICE, timeout=30)

    assert response.status_code == 404
    assert response.text == host_app.NOT_FOUND_PAGE


def test_the_hosts_own_pages_are_served(host: tuple[Stack, str]) -> None:
    _, url = host

    response = requests.get(url + "/", timeout=30)

    assert (response.status_code, response.text) == (200, "host: home")
