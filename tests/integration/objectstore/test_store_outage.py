"""SeaweedFS killed mid-upload and started again on the same folder.

While the store is down a client gets a 503 ``store-unavailable`` problem
to retry, never a 202;
nothing of the broken uploads becomes visible (no manifest, no file
object); once it is back a tus client resumes from what was kept, and
every upload that was answered 202 ends ``done`` or ``failed`` with a
reason. The store is a SeaweedFS of this test's own: the run's shared one
must not go down under other tests.
"""

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack import processes as devprocesses
from devstack import seaweedfs as weed
from handoff.units import MiB
from tests.integration.objectstore.conftest import (
    TUS,
    S3Stack,
    curl,
    headers,
    s3_overrides,
    s3_view,
    tus_create,
)
from tests.support import objectstores
from tests.support.objectstores import ObjectServer
from tests.support.payloads import file_sha256, unique_random_file
from tests.support.polling import eventually
from tests.support.problems import assert_problem
from tests.support.processes import Processes

SIZE_MIB = 128
STORE_UNAVAILABLE = "https://handoff.dev/problems/store-unavailable"


@dataclass
class Restartable:
    """A SeaweedFS that a test may kill and start again, same folder, same port."""

    running: Processes
    folder: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def server(self) -> ObjectServer:
        return ObjectServer(weed.environment(self.port), objectstores.BUCKET)

    def start(self) -> None:
        """Serve; at teardown killed at once (its data is thrown away), not given weed's grace."""
        self.proc = objectstores.serve_seaweedfs(self.running, self.folder, self.port)
        self.running.callback(devprocesses.kill, self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        devprocesses.kill(self.proc)


@pytest.fixture
def own_seaweedfs(processes: Processes) -> Restartable:
    server = Restartable(processes, processes.folder("own-seaweedfs"), devprocesses.free_port())
    server.start()
    return server


def answered(client: subprocess.Popen, body: Path) -> tuple[int, dict[str, Any]]:
    """The HTTP status curl printed and the JSON body it saved."""
    out, _ = client.communicate(timeout=120)
    text = body.read_text() if body.exists() else ""
    return int(out or 0), (json.loads(text) if text.startswith("{") else {})


def sent(processes: Processes, argv: list[str]) -> subprocess.Popen:
    """``argv`` started, printing the status it was answered."""
    return processes.popen([*argv, "-w", "%{http_code}"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)


def small_upload(s3: S3Stack) -> requests.Response:
    return s3.stack.upload([("small.bin", b"a small file")])


def test_a_store_outage_mid_upload_is_a_clear_problem_and_a_tus_upload_resumes_after(
        processes: Processes, own_seaweedfs: Restartable, tmp_path: Path) -> None:
    prefix = objectstores.fresh_prefix()
    stack = processes.stack("s3-stack", s3_overrides(own_seaweedfs.server, prefix))
    s3 = S3Stack(stack, s3_view(own_seaweedfs.server, prefix))
    source = unique_random_file(tmp_path / "outage.bin", SIZE_MIB)
    accepted = [small_upload(s3).json()["id"]]
    tus_url = tus_create(s3, SIZE_MIB * MiB)
    tus_id = tus_url.rsplit("/", 1)[-1]

    multipart = sent(processes, curl(*headers(s3, {}), "-F", "purpose=raw", "-F",
                                     f"file=@{source}", f"{stack.api_url}/v1/uploads",
                          output=str(tmp_path / "multipart.json")))
    patch = sent(processes, curl(*headers(s3, {
        **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}),
        "-X", "PATCH", "--data-binary", f"@{source}", tus_url,
        output=str(tmp_path / "patch.json")))
    assert eventually(lambda: len(s3.pending()) == 2, timeout=60), s3.pending()
    own_seaweedfs.kill()

    for client, body in ((multipart, tmp_path / "multipart.json"),
                         (patch, tmp_path / "patch.json")):
        status, problem = answered(client, body)
        assert (status, problem.get("type")) == (503, STORE_UNAVAILABLE), body.read_text()
    during = small_upload(s3)
    assert_problem(during, 503, "store-unavailable")
    broken = problem_ids(tmp_path / "multipart.json")

    own_seaweedfs.start()
    offset = head_offset(s3, tus_url)
    with open(source, "rb") as handle:
        handle.seek(offset)
        rest = requests.patch(tus_url, data=handle, timeout=300, headers={
            **s3.stack.client_headers, **TUS, "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream"})
    assert rest.status_code == 204, rest.text
    accepted += [tus_id, small_upload(s3).json()["id"]]

    finals = {upload_id: stack.wait_for(upload_id, timeout=300) for upload_id in accepted}
    assert all(final["status"] == "done" or (final["status"] == "failed" and final["error"])
               for final in finals.values()), finals
    assert finals[tus_id]["status"] == "done", finals[tus_id]
    assert finals[tus_id]["files"][0]["sha256"] == file_sha256(source)
    for upload_id in broken:
        visible = s3.objects(upload_id)
        assert "manifest.json" not in visible and not any(
            key.startswith("files/") for key in visible), visible


def problem_ids(body: Path) -> list[str]:
    problem = json.loads(body.read_text())
    return [problem["upload_id"]] if "upload_id" in problem else []


def head_offset(s3: S3Stack, url: str) -> int:
    answer = requests.head(url, timeout=60, headers={**s3.stack.client_headers, **TUS})
    assert answer.status_code == 200, answer.status_code
    return int(answer.headers["Upload-Offset"])


