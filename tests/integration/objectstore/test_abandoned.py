"""Clients killed mid-body leave nothing in the bucket once their uploads are past
``HANDOFF_PARTIAL_TTL`` and a sweep (``handoff-gc --once``) has run.

A multipart upload's bytes go into an S3 multipart upload as they arrive,
and a tus upload keeps its segments to be resumed: neither may outlive
its TTL, as objects or as a multipart upload S3 would keep (and bill)
without listing it among the objects.
"""

import signal
import subprocess
from pathlib import Path

import requests

from devstack.processes import BIN
from handoff.units import MiB
from tests.integration.objectstore.conftest import TUS, S3Stack, curl, headers, tus_create
from tests.support.payloads import random_file
from tests.support.polling import eventually
from tests.support.processes import Processes

PARTIAL_TTL = 2.0
SIZE_MIB = 256


def killed_mid_body(processes: Processes, s3: S3Stack, argv: list[str]) -> None:
    """Run the client ``argv`` until the store has begun a multipart write for it, then kill it."""
    client = processes.popen(argv, stdin=subprocess.DEVNULL)
    assert eventually(lambda: s3.pending() or client.poll() is not None, timeout=60)
    assert client.poll() is None, "the client finished before it could be killed"
    client.send_signal(signal.SIGKILL)
    client.wait()


def sweep(s3: S3Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "handoff-gc"), "--once"], env=s3.stack.env, text=True,
                          capture_output=True, timeout=120, check=False)


def test_uploads_abandoned_mid_body_are_gone_from_the_bucket_after_a_sweep(
        make_s3_stack, processes: Processes, tmp_path: Path) -> None:
    s3 = make_s3_stack({"HANDOFF_PARTIAL_TTL": f"{PARTIAL_TTL}s"})
    source = random_file(tmp_path / "abandoned.bin", SIZE_MIB)

    killed_mid_body(processes, s3, curl(*headers(s3, {}), "-F", "purpose=raw",
                                        "-F", f"file=@{source}", f"{s3.stack.api_url}/v1/uploads"))
    assert eventually(lambda: not s3.pending(), timeout=60), s3.pending()
    url = tus_create(s3, SIZE_MIB * MiB)
    tus_id = url.rsplit("/", 1)[-1]
    killed_mid_body(processes, s3, curl(*headers(s3, {
        **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}),
        "-X", "PATCH", "--data-binary", f"@{source}", url))
    assert eventually(lambda: s3.stack.status(tus_id).get("offset", 0) > 0, timeout=60)
    kept = s3.objects(tus_id)
    assert any(key.startswith("append/") for key in kept), kept

    assert eventually(lambda: sweep(s3).stdout.count(f"deleted {tus_id} ") == 1,
                      timeout=PARTIAL_TTL + 60)

    assert s3.listing() == []
    assert s3.pending() == []
    gone = requests.head(url, timeout=30, headers={**s3.stack.client_headers, **TUS})
    assert gone.status_code == 404


def test_a_geo_service_killed_mid_body_leaves_no_multipart_upload_after_a_sweep(
        make_s3_stack, processes: Processes, tmp_path: Path) -> None:
    """Nobody is left to abort the write the geo service had begun: the sweep must."""
    s3 = make_s3_stack({"HANDOFF_PARTIAL_TTL": f"{PARTIAL_TTL}s"})
    source = random_file(tmp_path / "abandoned.bin", SIZE_MIB)
    client = processes.popen(curl(*headers(s3, {}), "-F", "purpose=raw", "-F", f"file=@{source}",
                                  f"{s3.stack.api_url}/v1/uploads"), stdin=subprocess.DEVNULL)
    assert eventually(lambda: s3.pending() or client.poll() is not None, timeout=60)
    s3.stack.kill("geo")
    client.wait(60)
    s3.stack.start("geo")
    assert s3.pending() != []

    assert eventually(lambda: sweep(s3).returncode == 0 and not s3.pending(),
                      timeout=PARTIAL_TTL + 60), s3.pending()
    assert s3.listing() == []
