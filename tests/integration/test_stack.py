"""``make run``'s launcher: the whole stack comes up, serves, and leaves nothing behind."""

import os
import signal
import subprocess
import sys
import threading

import psutil
import pytest
import requests

from handoff import processes
from tests.polling import eventually

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_stack_starts_serves_and_stops_every_child(tmp_path, stop_signal):
    api_port, geo_port = processes.free_port(), processes.free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("HANDOFF_", "dramatiq_"))}
    env.update(HANDOFF_API_PORT=str(api_port), HANDOFF_GEO_PORT=str(geo_port),
               HANDOFF_UPLOADS_ROOT=str(tmp_path / "uploads"),
               HANDOFF_HEARTBEAT_DIR=str(tmp_path),
               HANDOFF_GC_METRICS_PORT=str(processes.free_port()),
               dramatiq_prom_port=str(processes.free_port()))
    launcher = subprocess.Popen([sys.executable, "-m", "handoff.stack"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    lines: list[str] = []
    # Every child writes to this pipe: keep draining it so none blocks on a full pipe.
    reader = threading.Thread(target=lambda: lines.extend(launcher.stdout or ()), daemon=True)
    reader.start()
    try:
        assert eventually(lambda: any("curl -F purpose=raw" in line for line in lines),
                          timeout=60), "".join(lines[-30:])
        assert any("handoff: ready on" in line for line in lines)
        children = psutil.Process(launcher.pid).children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        for part in ("valkey-server", "api_service.app", "geo_service.app",
                     "geo_service.worker", "handoff-gc"):
            assert part in names, names

        response = requests.post(f"http://127.0.0.1:{api_port}/v1/uploads", timeout=30,
                                 files={"file": ("x.bin", b"x" * 1000)}, data={"purpose": "raw"})
        assert response.status_code == 202, response.text

        launcher.send_signal(stop_signal)
        assert launcher.wait(timeout=60) == 0
        assert eventually(lambda: not any(child.is_running() and child.status() != "zombie"
                                          for child in children), timeout=30)
    finally:
        processes.kill(launcher)
