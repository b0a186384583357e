"""``python -m bench.s3_requests``: the S3 requests one upload costs, counted, per operation.

Checks the formulas of ``docs/scaling.md`` against a real stack: the API,
one geo service, a worker and a sweeper on an embedded SeaweedFS. Every
process of the stack loads a boto3 event hook (a ``sitecustomize`` on its
``PYTHONPATH``) that appends the name of each S3 request it sends,
retries included, to a file of its own; this program sums them per
process kind and operation for each phase:

- a multipart upload of ``F`` files of ``S`` bytes, from the POST to its job done,
- a tus upload of the same total size in ``P`` PATCHes, to its job done,
- the removal of both through the geo service (as retention's delete does),
- the sweeper's cycles in between (counted per cycle).

Settings: ``HANDOFF_BENCH_FILES`` (F, default 2), ``HANDOFF_BENCH_FILE_MIB``
(S in MiB, default 20), ``HANDOFF_BENCH_PATCHES`` (P, default 4).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

from bench import tus_client
from bench.client import TUS
from bench.payload import Payloads
from bench.s3 import BUCKET, STORE_PREFIX, bucket_ids, seaweedfs_running
from bench.services import Stack, object_stack
from devstack import processes, seaweedfs
from handoff.units import MiB

#: Counts S3 requests as boto3 sends them, one line per request, in a file per process.
#: botocore is patched once something imports it: importing it here, before gevent
#: patches the standard library, would break ssl in the gevent workers.
HOOK = '''
import importlib.abc
import importlib.util
import os
import sys

_ARGV = " ".join(sys.argv)
_KIND = next((kind for word, kind in (("api_service", "api"), ("geo_service.app", "geo"),
                                      ("dramatiq", "worker"), ("handoff-gc", "gc"))
              if word in _ARGV), "other")


def _count(event_name, **kwargs):
    with open(os.path.join(os.environ["HANDOFF_S3_REQUEST_LOG"], f"{os.getpid()}.log"),
              "a") as log:
        log.write(f"{_KIND} {event_name.rsplit('.', 1)[-1]}\\n")


def _patch(session):
    create_client = session.Session.create_client

    def counted_client(self, *args, **kwargs):
        client = create_client(self, *args, **kwargs)
        client.meta.events.register("before-send.s3", _count)
        return client

    session.Session.create_client = counted_client


class _OnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "botocore.session":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _OnImport())
'''
GC_INTERVAL = 2.0
POLL_SECONDS = 1.0
STATUS_READS = 10


def _stack_env(root: Path, log_dir: Path, weed_env: dict[str, str]) -> dict[str, str]:
    hook_dir = root / "hook"
    hook_dir.mkdir(parents=True)
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    return {**weed_env, "HANDOFF_STORE_URL": f"s3://{BUCKET}/{STORE_PREFIX}",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(hook_dir),
                                                        os.environ.get("PYTHONPATH")])),
            "HANDOFF_S3_REQUEST_LOG": str(log_dir),
            "HANDOFF_GC_INTERVAL": f"{GC_INTERVAL:g}s", "HANDOFF_METRICS_HOST": "127.0.0.1",
            **dict(zip(("HANDOFF_GC_METRICS_PORT", "HANDOFF_WORKER_METRICS_PORT"),
                       map(str, processes.free_ports(2)), strict=True))}


def tally(log_dir: Path) -> Counter[str]:
    """``kind Operation`` -> requests, summed over every process's file, then emptied."""
    counts: Counter[str] = Counter()
    for path in log_dir.glob("*.log"):
        lines = path.read_text().splitlines()
        path.write_text("")
        counts.update(lines)
    return counts


def _status(stack: Stack, upload_id: str) -> str:
    url = f"{stack.url('api')}/v1/uploads/{upload_id}"
    return str(requests.get(url, timeout=10).json().get("status"))


def _wait_done(stack: Stack, upload_id: str, timeout: float = 120.0) -> int:
    """Poll the status every second until the job ended; how many polls it took."""
    deadline = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < deadline:
        polls += 1
        if _status(stack, upload_id) in ("done", "failed"):
            return polls
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"upload {upload_id} not done after {timeout:.0f}s")


def _multipart(stack: Stack, paths: list[Path]) -> str:
    argv = ["curl", "-sS", "-F", "purpose=raw"]
    for path in paths:
        argv += ["-F", f"file=@{path}"]
    out = subprocess.run([*argv, f"{stack.url('api')}/v1/uploads"], check=True,
                         capture_output=True, text=True).stdout
    return str(json.loads(out)["id"])


def _tus(stack: Stack, path: Path, patches: int) -> str:
    before = bucket_ids(seaweedfs.client(stack.env))
    chunk = -(-path.stat().st_size // patches)
    tus_client.send(TUS.url(stack), path, chunk, 600.0)
    (upload_id,) = bucket_ids(seaweedfs.client(stack.env)) - before
    return upload_id


def _remove(stack: Stack, upload_id: str) -> None:
    url = f"{stack.url('geo')}/uploads/{upload_id}"
    requests.delete(url, headers=stack.geo_auth, timeout=30).raise_for_status()


def _phase(name: str, log_dir: Path, started: float, report: dict[str, dict[str, int]],
           polls: int = 0) -> None:
    """Record the requests since the last phase (the sweeper's "gc" lines run on a timer)."""
    report[name] = dict(sorted(tally(log_dir).items()))
    report[name]["seconds"] = round(time.monotonic() - started)
    if polls:
        report[name]["status polls"] = polls


def main() -> int:
    files = int(os.environ.get("HANDOFF_BENCH_FILES") or 2)
    size = int(float(os.environ.get("HANDOFF_BENCH_FILE_MIB") or 20) * MiB)
    patches = int(os.environ.get("HANDOFF_BENCH_PATCHES") or 4)
    report: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="handoff-s3-requests-") as scratch:
        root = Path(scratch)
        log_dir = root / "requests"
        log_dir.mkdir()
        payloads = Payloads(root / "payload")
        paths = [payloads.get(size + n) for n in range(files)]
        tus_path = payloads.get(files * size)
        with seaweedfs_running(root / "seaweedfs") as (_, weed_env), \
                object_stack(root / "stack", _stack_env(root, log_dir, weed_env),
                             ("redis", "geo", "worker", "gc")) as stack:
            time.sleep(2 * GC_INTERVAL)
            tally(log_dir)
            started = time.monotonic()
            time.sleep(5 * GC_INTERVAL)
            _phase("sweeper, empty bucket, 5 cycles", log_dir, started, report)
            started = time.monotonic()
            multipart = _multipart(stack, paths)
            _phase(f"multipart {files} x {size} B, the POST", log_dir, started, report)
            started = time.monotonic()
            polls = _wait_done(stack, multipart)
            _phase("multipart, to done", log_dir, started, report, polls)
            started = time.monotonic()
            resumable = _tus(stack, tus_path, patches)
            _phase(f"tus {files * size} B in {patches} PATCHes, to the last", log_dir, started,
                   report)
            started = time.monotonic()
            polls = _wait_done(stack, resumable)
            _phase("tus, to done", log_dir, started, report, polls)
            started = time.monotonic()
            for _ in range(STATUS_READS):
                _status(stack, multipart)
            _phase(f"{STATUS_READS} status reads", log_dir, started, report)
            started = time.monotonic()
            time.sleep(5 * GC_INTERVAL)
            _phase("sweeper, both uploads done, 5 cycles", log_dir, started, report)
            started = time.monotonic()
            for upload_id in (multipart, resumable):
                _remove(stack, upload_id)
            _phase("remove both", log_dir, started, report)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
