"""handoff.server.gunicorn_conf under a real gunicorn: its metrics folder and its settings."""

import glob
import os
import subprocess
import tempfile

from devstack import processes

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
        # A loaded machine can take gunicorn past stop()'s usual 10 s, and a
        # SIGKILL then would leave the folder: this checks the clean stop.
        processes.stop(following, timeout=120)
    assert _metrics_dirs(following.pid) == [], "a clean stop removes its own"


def test_a_metrics_dir_that_is_set_is_used_and_kept(tmp_path):
    metrics = tmp_path / "metrics"
    port = processes.free_port()
    env = {**os.environ, "HANDOFF_METRICS_DIR": str(metrics)}
    proc = processes.start(processes.gunicorn_argv(APP, port), env, tmp_path / "gunicorn.log")
    try:
        processes.wait_port(port, proc)
        assert metrics.is_dir()
        assert _metrics_dirs(proc.pid) == []
    finally:
        processes.stop(proc)
    assert metrics.is_dir(), "a folder the operator chose is not removed"


def test_a_bad_setting_stops_gunicorn_naming_the_variable(tmp_path):
    env = {**os.environ, "HANDOFF_WEB_WORKERS": "two"}
    done = subprocess.run(processes.gunicorn_argv(APP, processes.free_port()), env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)

    assert done.returncode != 0
    assert "HANDOFF_WEB_WORKERS='two' is invalid" in done.stderr
    assert "Traceback" not in done.stderr
