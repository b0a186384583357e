"""``make run``'s launcher: the whole stack comes up, serves, and leaves nothing behind."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import redis
import requests

from devstack import azurite, processes
from geo_service.store.azure import AzureBucket, azure_client
from tests.support.polling import eventually

ROOT = Path(__file__).resolve().parents[2]


def _clean_environment() -> dict[str, str]:
    """This process's environment without any setting of the product.

    The launcher is not installed (it stays out of the production image), so
    from another folder it is found through the checkout, as ``make run`` does.
    """
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("HANDOFF_", "dramatiq_"))}
    return {**env, "PYTHONPATH": str(ROOT)}


def _launch(env: dict[str, str], cwd: Path | None = None) -> tuple[subprocess.Popen, list[str]]:
    """``make run``'s launcher in a session of its own; its output lines are collected."""
    launcher = subprocess.Popen([sys.executable, "-m", "devstack.stack"], env=env, cwd=cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    lines: list[str] = []
    # Every child writes to this pipe: keep draining it so none blocks on a full pipe.
    threading.Thread(target=lambda: lines.extend(launcher.stdout or ()), daemon=True).start()
    return launcher, lines


GEO_PORTS = 3


def _start_launcher(root: Path, extra: dict[str, str] | None = None
                    ) -> tuple[subprocess.Popen, list[str], dict[str, int]]:
    # Room for three geo replicas on HANDOFF_GEO_PORT and the two ports after it.
    geo = processes.free_port_run(GEO_PORTS)
    others = [port for port in processes.free_ports(4 + GEO_PORTS)
              if not geo <= port < geo + GEO_PORTS][:4]
    ports = {"geo": geo, **dict(zip(("api", "gc", "worker", "health"), others, strict=True))}
    env = _clean_environment()
    env.update(HANDOFF_API_PORT=str(ports["api"]), HANDOFF_GEO_PORT=str(ports["geo"]),
               HANDOFF_UPLOADS_ROOT=str(root / "uploads"),
               HANDOFF_HEARTBEAT_DIR=str(root),
               HANDOFF_GC_METRICS_PORT=str(ports["gc"]),
               HANDOFF_WORKER_METRICS_PORT=str(ports["worker"]),
               HANDOFF_HEALTH_PORT=str(ports["health"]))
    env.update(extra or {})
    launcher, lines = _launch(env, cwd=root)  # the stack's var/ goes to root too
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
        probes = _line(lines, READY_PROBES)
        for port in probes.groups():  # the API's and the geo service's masters
            assert eventually(lambda p=port: _answers(f"http://127.0.0.1:{p}/readyz"))

        launcher.send_signal(stop_signal)
        assert launcher.wait(timeout=60) == 0
        assert eventually(lambda: _all_gone(children), timeout=30)
    finally:
        processes.kill(launcher)


@pytest.mark.parametrize("attempt", range(2))
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


READY_PROBES = re.compile(r"probes: api http://127\.0\.0\.1:(\d+)/healthz, "
                          r"geo http://127\.0\.0\.1:(\d+)/healthz")
READY_METRICS = re.compile(r"metrics: worker http://127\.0\.0\.1:(\d+)/metrics, "
                           r"sweeper http://127\.0\.0\.1:(\d+)/metrics")


def _line(lines: list[str], pattern: str | re.Pattern[str]) -> re.Match[str]:
    found = [match for line in lines if (match := re.search(pattern, line))]
    assert found, "".join(lines[-30:])
    return found[0]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _listening(children: list[psutil.Process]) -> set[str]:
    """The addresses the stack's processes listen on."""
    found = set()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            found |= {conn.laddr.ip for conn in child.net_connections(kind="inet")
                      if conn.status == psutil.CONN_LISTEN}
    return found


def _stop(launcher: subprocess.Popen, children: list[psutil.Process]) -> None:
    """Stop a launcher and, should a test have failed half-way, whatever it left."""
    if launcher.poll() is None:
        launcher.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            launcher.wait(timeout=60)
    processes.kill(launcher)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _kill_and_see_it_started_again(launcher: subprocess.Popen, lines: list[str], name: str,
                                   part: psutil.Process) -> None:
    """SIGKILL one part's group: the launcher says so, starts it again and goes on."""
    os.killpg(part.pid, signal.SIGKILL)
    assert eventually(lambda: any(f"{name} started again" in line for line in lines),
                      timeout=60), lines[-20:]
    assert launcher.poll() is None
    assert any(f"{name} exited with -9" in line for line in lines)


def _stop_and_see_every_part_gone(launcher: subprocess.Popen) -> None:
    """SIGTERM the launcher: it exits 0 and none of the parts it runs now outlives it."""
    children = psutil.Process(launcher.pid).children(recursive=True)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=60) == 0
    assert eventually(lambda: _all_gone(children), timeout=30)


def _only_ports(api: int, geo: int) -> dict[str, str]:
    env = _clean_environment()
    env.update(HANDOFF_API_PORT=str(api), HANDOFF_GEO_PORT=str(geo))
    return env


def test_two_stacks_side_by_side_need_nothing_but_their_own_api_and_geo_ports(tmp_path):
    """Same folder, no other setting: metrics ports, valkey files and locks do not collide."""
    ports = processes.free_ports(4)
    runs = [_launch(_only_ports(api, geo), cwd=tmp_path) for api, geo in (ports[:2], ports[2:])]
    children: list[psutil.Process] = []
    try:
        for launcher, lines in runs:
            children += _wait_ready(launcher, lines)
        metrics = [_line(lines, READY_METRICS).groups() for _, lines in runs]
        assert len({port for pair in metrics for port in pair}) == 4, metrics
        for api, pair in zip((ports[0], ports[2]), metrics, strict=True):
            assert requests.get(f"http://127.0.0.1:{api}/healthz", timeout=10).status_code == 200
            for port in pair:
                assert eventually(lambda p=port: _answers(f"http://127.0.0.1:{p}/metrics"))
            assert (tmp_path / "var" / "valkey" / str(api) / "appendonlydir").is_dir()
            assert eventually(lambda a=api: (tmp_path / "var" / "heartbeats" / str(a)
                                             / "handoff-gc.heartbeat").exists())
        assert _listening(children) - {"127.0.0.1"} == set()

        third = subprocess.run([sys.executable, "-m", "devstack.stack"], cwd=tmp_path,
                               env=_only_ports(ports[0], processes.free_port()),
                               capture_output=True, text=True, timeout=60)
        assert third.returncode == 1
        assert f"another stack runs with HANDOFF_API_PORT={ports[0]}" in third.stderr

        for launcher, _ in runs:
            launcher.send_signal(signal.SIGTERM)
        assert [launcher.wait(timeout=60) for launcher, _ in runs] == [0, 0]
        assert eventually(lambda: _all_gone(children), timeout=30)
    finally:
        for launcher, _ in runs:
            _stop(launcher, children)


def _dramatiq_leader(children: list[psutil.Process]) -> psutil.Process:
    """The worker's ``dramatiq`` process, which leads the group of its worker processes."""
    return next(child for child in children if "geo_service.worker" in " ".join(child.cmdline())
                and os.getpgid(child.pid) == child.pid)


def test_a_job_queued_while_the_worker_is_away_survives_a_restart_of_the_stack(tmp_path):
    """The embedded valkey's append-only file keeps the queue from one ``make run`` to the next.

    The worker is frozen before the upload, so the message can only wait in
    valkey; it is then killed, which stops the stack. A sweeper requeue
    cannot stand in for the lost message: it would wait a day.
    """
    env = _only_ports(*processes.free_ports(2))
    env["HANDOFF_REQUEUE_AFTER"] = "1d"
    launcher, lines = _launch(env, cwd=tmp_path)
    children: list[psutil.Process] = []
    try:
        children = _wait_ready(launcher, lines)
        worker = _dramatiq_leader(children)
        os.killpg(worker.pid, signal.SIGSTOP)
        response = requests.post(f"http://127.0.0.1:{env['HANDOFF_API_PORT']}/v1/uploads",
                                 files={"file": ("x.bin", b"x" * 1000)}, data={"purpose": "raw"},
                                 timeout=30)
        assert response.status_code == 202, response.text
        valkey = redis.Redis(port=int(_line(lines, r"valkey-server on 127\.0\.0\.1:(\d+)")[1]))
        assert valkey.llen("dramatiq:geoprocessing") == 1  # waiting, taken by no worker
        valkey.close()
        os.killpg(worker.pid, signal.SIGKILL)
        # Stopped before the 2 s restart delay brings the worker back to take the job.
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=60) == 0
        assert eventually(lambda: _all_gone(children), timeout=30)

        launcher, lines = _launch(env, cwd=tmp_path)
        children = _wait_ready(launcher, lines)
        status_url = f"http://127.0.0.1:{env['HANDOFF_API_PORT']}/v1/uploads/{response.json()['id']}"
        assert eventually(lambda: requests.get(status_url, timeout=10).json()["status"] == "done",
                          timeout=60), requests.get(status_url, timeout=10).text
    finally:
        _stop(launcher, children)


READY_REPLICAS = re.compile(r"geo replicas geo-0 (http://\S+), geo-1 (http://\S+), "
                            r"geo-2 (http://\S+);")


def test_three_replicas_each_run_their_parts_and_keep_their_own_store(tmp_path):
    secret = "replicas-test-secret"
    launcher, lines, ports = _start_launcher(tmp_path, {"HANDOFF_GEO_REPLICAS": str(GEO_PORTS),
                                                        "HANDOFF_GEO_SECRET": secret})
    try:
        children = _wait_ready(launcher, lines)
        commands = [" ".join(child.cmdline()) for child in children]
        for part in ("geo_service.app", "geo_service.worker", "handoff-gc"):
            assert sum(part in command for command in commands) >= 3, commands
        urls = _line(lines, READY_REPLICAS).groups()
        assert urls == tuple(f"http://127.0.0.1:{ports['geo'] + index}" for index in range(3))
        for index, url in enumerate(urls):
            capacity = requests.get(f"{url}/capacity", timeout=10,
                                    headers={"Authorization": f"Bearer {secret}"})
            assert capacity.json()["replica"] == f"geo-{index}"

        for _ in range(3):
            response = requests.post(f"http://127.0.0.1:{ports['api']}/v1/uploads", timeout=30,
                                     files={"file": ("x.bin", b"x" * 1000)},
                                     data={"purpose": "raw"})
            assert response.status_code == 202, response.text
        stores = sorted(path.name for path in (tmp_path / "uploads").iterdir())
        assert stores == ["geo-0", "geo-1", "geo-2"]

        port = urls[1].rsplit(":", 1)[1]
        (geo_1,) = [child for child in children if "geo_service.app" in " ".join(child.cmdline())
                    and f":{port}" in " ".join(child.cmdline()) and child.ppid() == launcher.pid]
        _kill_and_see_it_started_again(launcher, lines, "geo-1", geo_1)
        assert requests.get(f"{urls[1]}/capacity", timeout=10,
                            headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        _stop_and_see_every_part_gone(launcher)
    finally:
        processes.kill(launcher)


def test_with_one_replica_a_dead_part_is_started_again_and_the_stack_goes_on(tmp_path):
    launcher, lines, ports = _start_launcher(tmp_path)
    try:
        children = _wait_ready(launcher, lines)
        (api,) = [child for child in children if "api_service.app" in " ".join(child.cmdline())
                  and child.ppid() == launcher.pid]
        _kill_and_see_it_started_again(launcher, lines, "api", api)
        assert _answers(f"http://127.0.0.1:{ports['api']}/readyz")
        _stop_and_see_every_part_gone(launcher)
    finally:
        processes.kill(launcher)


READY_AZURITE = re.compile(r"started Azurite on 127\.0\.0\.1:(\d+) \(blobs kept in (\S+)\)")


def test_an_az_store_without_an_account_is_served_by_an_azurite_that_stops_with_the_stack(
        tmp_path):
    """The upload's bytes land in the embedded Azurite, whose blobs stay in the stack's var/."""
    launcher, lines, ports = _start_launcher(tmp_path, {
        "HANDOFF_STORE_URL": "az://handoff/dev", "AZURE_STORAGE_CONNECTION_STRING": "",
        "AZURE_STORAGE_ACCOUNT": ""})
    children: list[psutil.Process] = []
    try:
        children = _wait_ready(launcher, lines)
        started = _line(lines, READY_AZURITE)
        port, folder = int(started[1]), Path(started[2])
        assert folder == tmp_path / "var" / "azurite" / str(ports["api"])
        assert "uploads in az://handoff/dev)" in _line(lines, "handoff: ready on").string
        response = requests.post(f"http://127.0.0.1:{ports['api']}/v1/uploads", timeout=30,
                                 files={"file": ("x.bin", b"x" * 1000)}, data={"purpose": "raw"})
        assert response.status_code == 202, response.text
        status_url = f"http://127.0.0.1:{ports['api']}/v1/uploads/{response.json()['id']}"
        assert eventually(lambda: requests.get(status_url, timeout=10).json()["status"] == "done",
                          timeout=60), requests.get(status_url, timeout=10).text

        bucket = AzureBucket(azure_client(azurite.environment(port)), "handoff", "dev")
        assert b"".join(bucket.read(f"{response.json()['id']}/files/0")) == b"x" * 1000
        _stop_and_see_every_part_gone(launcher)
        assert not _bound(port)
        assert any(folder.iterdir())
    finally:
        _stop(launcher, children)
