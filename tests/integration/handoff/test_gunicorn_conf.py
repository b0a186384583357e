"""What handoff.gunicorn_conf leaves behind when a master ends, cleanly or not."""

import glob
import os
import subprocess
import tempfile

from handoff import processes

APP = "tests.support.body_echo_app:app"


def _metrics_dirs(pid: int) -> list[str]:
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    return glob.glob(os.path.join(parent, f"handoff-metrics-{pid}-*"))


def _start(tmp_path) -> subprocess.Popen:
    port = processes.free_port()
    env = {k: v for k, v in os.environ.items() if k != "HANDOFF_METRICS_DIR"}
    proc = processes.start(processes.gunicorn_argv(APP, port), env, tmp_path / f"{port}.log")
    processes.wait_port(port, proc)
    return proc


def test_a_killed_masters_metrics_folder_goes_when_the_next_one_starts(tmp_path):
    killed = _start(tmp_path)
    try:
        assert len(_metrics_dirs(killed.pid)) == 1
    finally:
        processes.kill(killed)
    assert len(_metrics_dirs(killed.pid)) == 1, "SIGKILL leaves it behind"
    following = _start(tmp_path)
    try:
        assert _metrics_dirs(killed.pid) == []
        assert len(_metrics_dirs(following.pid)) == 1
    finally:
        processes.stop(following)
    assert _metrics_dirs(following.pid) == [], "a clean stop removes its own"
