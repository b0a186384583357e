"""The ``handoff`` client as a user runs it: a real process against the real stack."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from handoff.units import MiB


def handoff(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HANDOFF_URL", "HANDOFF_TOKEN")}
    return subprocess.run([sys.executable, "-m", "handoff.client.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_upload_waits_for_the_job_and_shows_progress(stack, tmp_path: Path):
    data = os.urandom(4 * MiB + 3)
    path = tmp_path / "survey.bin"
    path.write_bytes(data)

    done = handoff("upload", str(path), "--purpose", "raw", "--wait", "--progress",
                   "--interval", "0.2", "--url", stack.api_url)

    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["status"] == "done"
    assert status["files"] == [{"name": "survey.bin", "size": len(data),
                                "sha256": hashlib.sha256(data).hexdigest()}]
    assert "100%" in done.stderr

    again = handoff("status", status["id"], "--url", stack.api_url)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "done"


def test_unknown_purpose_is_a_client_error(stack, tmp_path: Path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"payload")
    refused = handoff("upload", str(path), "--purpose", "no-such-purpose", "--url", stack.api_url)
    assert refused.returncode == 3, refused.stderr
    assert refused.stdout == ""
    assert "error 400" in refused.stderr
    assert "unknown purpose" in refused.stderr
