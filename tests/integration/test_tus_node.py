"""tus-js-client under Node against the real stack: a PATCH broken off mid-body, retried, resumed.

tus-js-client (the version the upload page's Uppy uses, installed with npm
into ``var/node/``) sends 256 MiB in one PATCH through a proxy that lets
100 MiB and a bit of it reach the API, then breaks the client's connection while
the API's side stays open and silent. The client retries on its own; its
HEAD must get the durable offset at once, although the broken PATCH still
holds the upload (the API would wait ten minutes for its client), and the
upload ends ``done`` with the file's sha256.
"""

import functools
import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack import npm
from geo_service.store import FileStore
from handoff.units import MiB
from tests.geo_service.store import disk
from tests.support.payloads import file_sha256, unique_random_file
from tests.support.polling import eventually
from tests.support.processes import Processes
from tests.support.stacks import Stack
from tests.support.stalling_proxy import StallingProxy

ROOT = Path(__file__).resolve().parents[2]
# What the vendored Uppy's @uppy/tus (6.0.0) asks for, ^4.3.1: the newest 4.x.
VERSION = "4.3.1"
SCRIPT = ROOT / "tests" / "support" / "tus_node.mjs"
SIZE = 256 * MiB
# The PATCH body bytes the proxy lets through: the API relays them all, and the geo
# service keeps them all when the broken PATCH is made to let go.
DURABLE = 100 * MiB + 12345
TOKEN = "alice-token"
# A silent client would hold its PATCH for ten minutes: only a resume that makes it let go
# finishes within the test's bounds.
PATIENT_API = {"HANDOFF_API_TOKENS": f"alice:{TOKEN}", "HANDOFF_CLIENT_TIMEOUT": "10m",
               "HANDOFF_CLIENT_MIN_RATE": "0"}


@pytest.fixture(scope="session")
def tus_js_client() -> Path:
    """A folder whose node_modules holds tus-js-client at VERSION, kept in var/."""
    missing = npm.missing_programs()
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed (make browser-deps)")
    return npm.ensure_installed(npm.NODE_ROOT / f"tus-js-client-{VERSION}",
                                [f"tus-js-client@{VERSION}"], "tus-js-client/package.json")


class _NodeUpload:
    """tests/support/tus_node.mjs in its own process; its JSON lines collected as they come."""

    def __init__(self, processes: Processes, modules: Path, endpoint: str, path: Path,
                 store: Path, parts: int = 1) -> None:
        self.events: list[dict[str, Any]] = []
        self.process = processes.popen(
            ["node", str(SCRIPT), str(modules), endpoint, str(path), str(store), TOKEN,
             str(parts)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        processes.callback(self.stop)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.append(json.loads(line))

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    def stop(self) -> None:
        """Kill it by pid if it still runs, and read what it said to the end."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(10)

    def answers(self, method: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == "response" and e["method"] == method]

    def requests(self) -> list[str]:
        return [e["method"] for e in self.events if e["event"] == "request"]


@pytest.fixture
def node_upload(processes: Processes, tus_js_client: Path) -> Callable[..., _NodeUpload]:
    """Start tests/support/tus_node.mjs: ``node_upload(endpoint, path, store, parts=1)``."""
    return functools.partial(_NodeUpload, processes, tus_js_client)


def _stored_size(stack: Stack, upload_id: str) -> int:
    path = disk.file_path(FileStore(stack.uploads), upload_id)
    return path.stat().st_size if path.exists() else 0


def _only_upload(stack: Stack) -> str | None:
    found = [path.name for path in stack.uploads.iterdir() if not path.name.startswith(".")]
    return found[0] if len(found) == 1 else None


def _received(stack: Stack) -> float:
    """The API's count of upload bytes read from clients, over all its workers."""
    text = requests.get(f"{stack.api_url}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("handoff_api_received_bytes_total"))


def _stalled_upload(stack: Stack, proxy: StallingProxy, durable: int) -> str:
    """The one upload's id, once the proxy stalled its PATCH and the geo side holds ``durable``."""
    assert proxy.stalled.wait(120)
    assert eventually(lambda: _only_upload(stack) is not None)
    upload_id = _only_upload(stack)
    assert upload_id is not None
    assert eventually(lambda: _stored_size(stack, upload_id) == durable, timeout=60)
    return upload_id


def test_a_patch_cut_off_mid_body_resumes_from_the_durable_offset(
        make_stack, node_upload: Callable[..., _NodeUpload], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]):
    stack = make_stack(PATIENT_API)
    path = unique_random_file(tmp_path / "survey.bin", SIZE // MiB)
    store = tmp_path / "tus-urls.json"
    proxy = StallingProxy(stack.ports["api"], b"PATCH ", DURABLE)
    try:
        upload = node_upload(f"http://127.0.0.1:{proxy.port}/v1/uploads", path, store)
        upload_id = _stalled_upload(stack, proxy, DURABLE)
        proxy.cut()
        assert upload.wait(timeout=300) == 0, upload.events
        broken_patch_still_open = proxy.server_still_waiting()
    finally:
        proxy.close()

    heads = upload.answers("HEAD")
    patches = upload.answers("PATCH")
    assert [head["status"] for head in heads] == [200], upload.events
    assert heads[0]["offset"] == str(DURABLE)
    assert [(patch["status"], patch["offset"]) for patch in patches] == [(204, str(SIZE))]
    assert upload.requests() == ["POST", "PATCH", "HEAD", "PATCH"]
    assert broken_patch_still_open
    assert upload.events[-1]["event"] == "success"
    assert upload.events[-1]["url"] == f"http://127.0.0.1:{proxy.port}/v1/uploads/{upload_id}"

    status = stack.wait_for(upload_id, timeout=120)
    assert status["status"] == "done", status
    assert status["files"] == [{"name": "survey.bin", "size": SIZE, "sha256": file_sha256(path)}]
    assert _received(stack) == SIZE
    stored = json.loads(store.read_text())
    assert [entry["uploadUrl"].rsplit("/", 1)[-1] for entry in stored.values()] == [upload_id]
    with capsys.disabled():
        sent_at = next(e["ms"] for e in upload.events if e["event"] == "request"
                       and e["method"] == "HEAD")
        print(f"\nthe resume's HEAD answered {heads[0]['ms'] - sent_at} ms after it was sent")


def test_a_new_client_resumes_from_the_url_it_stored(
        make_stack, node_upload: Callable[..., _NodeUpload], tmp_path: Path):
    """The first client dies mid-PATCH; the next finds the upload in its FileUrlStorage."""
    stack = make_stack(PATIENT_API)
    path = unique_random_file(tmp_path / "plan.bin", 64)
    store = tmp_path / "tus-urls.json"
    durable = 20 * MiB + 777
    proxy = StallingProxy(stack.ports["api"], b"PATCH ", durable)
    endpoint = f"http://127.0.0.1:{proxy.port}/v1/uploads"
    try:
        first = node_upload(endpoint, path, store)
        upload_id = _stalled_upload(stack, proxy, durable)
        first.stop()
        second = node_upload(endpoint, path, store)
        assert second.wait(timeout=300) == 0, second.events
    finally:
        proxy.close()

    assert first.requests() == ["POST", "PATCH"]
    assert second.requests() == ["HEAD", "PATCH"]
    assert [(head["status"], head["offset"]) for head in second.answers("HEAD")] == [
        (200, str(durable))]
    assert second.events[-1]["url"] == f"{endpoint}/{upload_id}"
    status = stack.wait_for(upload_id, timeout=120)
    assert status["status"] == "done", status
    assert status["files"] == [{"name": "plan.bin", "size": 64 * MiB, "sha256": file_sha256(path)}]


def test_parallel_parts_are_joined_into_one_upload(make_stack,
                                                  node_upload: Callable[..., _NodeUpload],
                                                  tmp_path: Path):
    """Four partial uploads over four connections at once, then the final one made of them."""
    stack = make_stack({"HANDOFF_API_TOKENS": f"alice:{TOKEN}"})
    path = unique_random_file(tmp_path / "mosaic.bin", 64)
    upload = node_upload(f"{stack.api_url}/v1/uploads", path, tmp_path / "tus-urls.json",
                         parts=4)
    assert upload.wait(timeout=300) == 0, upload.events

    posts = upload.answers("POST")
    assert sorted((post["status"], post["concat"]) for post in posts[:4]) == [
        (201, "partial")] * 4
    assert posts[4]["status"] == 201 and posts[4]["concat"].startswith("final;")
    assert [patch["status"] for patch in upload.answers("PATCH")] == [204] * 4
    upload_id = upload.events[-1]["url"].rsplit("/", 1)[-1]
    status = stack.wait_for(upload_id, timeout=120)
    assert status["status"] == "done", status
    assert status["files"] == [{"name": "mosaic.bin", "size": 64 * MiB,
                                "sha256": file_sha256(path)}]
    assert _only_upload(stack) == upload_id

