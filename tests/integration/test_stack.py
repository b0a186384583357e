"""``make run``'s launcher: the whole stack comes up, serves, and leaves nothing behind."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from handoff import processes
from tests.polling import eventually

pytestmark = pytest.mark.integration


def _start_launcher(root: Path) -> tuple[subprocess.Popen, list[str], dict[str, int]]:
    """``make run``'s launcher in a session of its own; its output lines are collected."""
    ports = {name: processes.free_port() for name in ("api", "geo", "gc", "worker")}
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("HANDOFF_", "dramatiq_"))}
    env.update(HANDOFF_API_PORT=str(ports["api"]), HANDOFF_GEO_PORT=str(ports["geo"]),
               HANDOFF_UPLOADS_ROOT=str(root / "uploads"),
               HANDOFF_HEARTBEAT_DIR=str(root),
               HANDOFF_GC_METRICS_PORT=str(ports["gc"]),
               HANDOFF_WORKER_METRICS_PORT=str(ports["worker"]))
    launcher = subprocess.Popen([sys.executable, "-m", "handoff.stack"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    lines: list[str] = []
    # Every child writes to this pipe: keep draining it so none blocks on a full pipe.
    threading.Thread(target=lambda: lines.extend(launcher.stdout or ()), daemon=True).start()
    return launcher, lines, ports


def _wait_ready(launcher: subprocess.Popen, lines: list[str]) -> list[psutil.Process]:
    assert eventually(lambda: any("curl -F purpose=raw" in line for line in lines),
                      timeout=60), "".join(lines[-30:])
    assert any("handoff: ready on" in line for line in lines)
    return psutil.Process(launcher.pid).children(recursive=True)


def _all_gone(children: list[psutil.Process]) -> bool:
    return not any(child.is_running() and child.status() != "zombie" for child in children)


def _bound(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_stack_starts_serves_and_stops_every_child(tmp_path, stop_signal):
    launcher, lines, ports = _start_launcher(tmp_path)
    try:
        children = _wait_ready(launcher, lines)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        for part in ("valkey-server", "api_service.app", "geo_service.app",
                     "geo_service.worker", "handoff-gc"):
            assert part in names, names

        response = requests.post(f"http://127.0.0.1:{ports['api']}/v1/uploads", timeout=30,
                                 files={"file": ("x.bin", b"x" * 1000)}, data={"purpose": "raw"})
        assert response.status_code == 202, response.text

        launcher.send_signal(stop_signal)
        assert launcher.wait(timeout=60) == 0
        assert eventually(lambda: _all_gone(children), timeout=30)
    finally:
        processes.kill(launcher)


@pytest.mark.parametrize("attempt", range(5))
@pytest.mark.parametrize("signals", [(signal.SIGTERM,), (signal.SIGINT, signal.SIGINT)],
                         ids=["group-sigterm", "sigint-twice"])
def test_signals_while_stopping_leave_no_process_and_no_port(tmp_path, signals, attempt):
    """SIGTERM to the whole group, or Ctrl-C pressed twice: the clean-up still finishes."""
    launcher, lines, ports = _start_launcher(tmp_path)
    try:
        children = _wait_ready(launcher, lines)
        for index, sig in enumerate(signals):
            if index:
                time.sleep(0.3)
            os.killpg(launcher.pid, sig)
        launcher.wait(timeout=60)
        assert eventually(lambda: _all_gone(children), timeout=30), "".join(lines[-30:])
        assert not any("Traceback" in line for line in lines), "".join(lines[-30:])
        assert [name for name, port in ports.items() if _bound(port)] == []
    finally:
        processes.kill(launcher)
