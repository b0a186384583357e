"""One soak run: start the stack, load it, let the nemesis loose, then check."""

import json
import logging
import os
import random
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from devstack import processes
from geo_service.store import UploadStore
from handoff.states import FINISHED
from handoff.units import MiB
from soak import load, schedule
from soak.chaos import COMPONENTS, Nemesis, Supervisor
from soak.objects import S3, SoakStack, open_checked_store, start_s3, unfinished_writes, with_s3
from soak.verdict import Attempt, Verdict, judge, summary

log = logging.getLogger("soak")

#: Short lifetimes, so the sweeper acts within the run.
TTLS = {"HANDOFF_GC_INTERVAL": "2s", "HANDOFF_PARTIAL_TTL": "10s",
        "HANDOFF_ORPHAN_TTL": "10s", "HANDOFF_REQUEUE_AFTER": "5s"}
GC_INTERVAL = 2.0
TTL = 10.0
#: The sweeper's age for lock files of deleted uploads (gc/sweep.py STALE_LOCK_AGE).
LOCK_AGE = 60.0
#: Bytes of file content per second of run: most files stay small on two cores.
BYTES_PER_SECOND = 3 * MiB
CLIENTS = 3


def environment(root: Path) -> tuple[dict[str, str], dict[str, int]]:
    env, ports = processes.scratch_environment(root, "soak-geo-secret")
    env.update(TTLS)
    return env, ports


class Observer(threading.Thread):
    """Poll accepted uploads during the run and note every terminal outcome seen."""

    def __init__(self, api: str) -> None:
        super().__init__(name="observer", daemon=True)
        self.api = api
        self.ids: list[str] = []
        self.seen: dict[str, set[str]] = defaultdict(set)
        self.last: dict[str, dict[str, Any] | None] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            self.poll_all()

    def poll_all(self) -> None:
        for upload_id in list(self.ids):
            self.poll(upload_id)

    def poll(self, upload_id: str) -> None:
        try:
            response = requests.get(f"{self.api}/v1/uploads/{upload_id}", timeout=5)
        except requests.RequestException:
            return
        if response.status_code == 404:
            self.last[upload_id] = None
        elif response.status_code == 200:
            status = response.json()
            self.last[upload_id] = status
            if status["status"] in FINISHED:
                self.seen[upload_id].add(json.dumps(
                    [status["status"], status.get("result"), status.get("error")],
                    sort_keys=True))

    def pending(self) -> list[str]:
        return [i for i in self.ids if self.last.get(i, {}) is not None
                and (self.last.get(i) or {}).get("status") not in FINISHED]


def clients(api_port: int, seed: int, seconds: float, attempts: list[Attempt],
            observer: Observer) -> list[threading.Thread]:
    budget = [int(seconds * BYTES_PER_SECOND)]
    deadline = time.monotonic() + seconds
    guard = threading.Lock()

    def client(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        while time.monotonic() < deadline:
            with guard:
                shape = load.draw(rng, budget[0])
                budget[0] -= sum(shape.sizes)
            attempt = load.send("127.0.0.1", api_port, shape, rng)
            with guard:
                attempts.append(attempt)
                if attempt.accepted and attempt.upload_id:
                    observer.ids.append(attempt.upload_id)

    return [threading.Thread(target=client, args=(n,), name=f"client-{n}", daemon=True)
            for n in range(CLIENTS)]


def wait_healthy(stack: processes.LocalStack, supervisor: Supervisor, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probes = (_answers(stack.url(name) + "/healthz") for name in ("api", "geo"))
        if supervisor.healthy() and all(probes):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the stack is not healthy {timeout}s after the nemesis stopped")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def leftovers(store: UploadStore, live: set[str], refused: set[str], now: float) -> list[str]:
    """What the store holds that no live upload needs, once the sweeper had its chance.

    An upload whose client got no answer (cut off, or a killed API worker) but
    that was processed to a result is finished work the sweeper keeps for its
    retention, not a leak; any other unknown or refused upload is.
    """
    found = [f"stray entry {name}" for name in store.stray_entries()]
    for upload_id in store.upload_ids():
        if upload_id in live:
            continue
        if upload_id in refused or store.result(upload_id) is None:
            found.append(f"upload folder {upload_id}")
    found += [f"trash {name}" for name in store.unfinished_removals()]
    found += unfinished_writes(store)
    for lock in store.lock_files():
        if lock.upload_id not in live and not store.has_entry(lock.upload_id) \
                and now - lock.mtime > LOCK_AGE + 2 * GC_INTERVAL:
            found.append(f"lock {lock.upload_id}")
    return found


def settle_leftovers(store: UploadStore, live: set[str], refused: set[str],
                     timeout: float) -> list[str]:
    """Leftovers, after waiting (bounded) for every TTL and lock age plus one sweep."""
    deadline = time.monotonic() + timeout
    while True:
        found = leftovers(store, live, refused, time.time())
        young = [lock for lock in store.lock_files()
                 if time.time() - lock.mtime <= LOCK_AGE + 2 * GC_INTERVAL]
        if (not found and not young) or time.monotonic() > deadline:
            return found
        time.sleep(2.0)


def run(seconds: float, seed: int, root: Path | None = None,
        store: str = "file") -> tuple[Verdict, Mapping[str, int]]:
    """Soak a stack storing into a folder (``store`` "file") or an S3 bucket ("s3")."""
    root = root or processes.scratch_dir("handoff-soak-")
    env, ports = environment(root)
    stack = SoakStack(root, env, ports)
    components: tuple[str, ...] = COMPONENTS
    targets: tuple[str, ...] = schedule.TARGETS
    attempts: list[Attempt] = []
    try:
        if store == S3:
            with_s3(stack)
            start_s3(stack)
            components, targets = (S3, *COMPONENTS), (*targets, S3)
        for name in COMPONENTS:
            stack.start(name)
        supervisor = Supervisor(stack, components)
        nemesis = Nemesis(stack, supervisor, schedule.plan(seed, seconds, targets), seed)
        observer = Observer(stack.url("api"))
        threads = clients(ports["api"], seed, seconds, attempts, observer)
        for thread in (supervisor, nemesis, observer, *threads):
            thread.start()
        for thread in threads:
            thread.join()
        nemesis.stopping.set()
        nemesis.join()
        wait_healthy(stack, supervisor, timeout=120)
        refused_at = max((a.answered_at for a in attempts), default=time.time())
        _wait_terminal(observer, timeout=180)
        observer.stopping.set()
        observer.join()
        observer.poll_all()
        supervisor.stopping.set()
        supervisor.join()
        time.sleep(max(0.0, refused_at + TTL + 2 * GC_INTERVAL - time.time()))
        live = {i for i in observer.ids if observer.last.get(i) is not None}
        refused = {a.upload_id for a in attempts if a.upload_id and not a.accepted}
        left = settle_leftovers(open_checked_store(stack), live, refused,
                                timeout=LOCK_AGE + 30)
        finals = {i: observer.last.get(i) for i in observer.ids}
        verdict = judge(attempts, finals, observer.seen, left)
        return verdict, nemesis.counts
    finally:
        stack.stop_all()
        if os.environ.get("HANDOFF_SOAK_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)


def _wait_terminal(observer: Observer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while observer.pending() and time.monotonic() < deadline:
        observer.poll_all()
        time.sleep(1.0)


def report(verdict: Verdict, faults: Mapping[str, int], seed: int) -> str:
    lines = [summary(verdict, faults, seed)]
    lines += [f"lost {item}" for item in verdict.lost]
    lines += [f"leaked {item}" for item in verdict.leaked]
    lines += [f"duplicate {item}" for item in verdict.duplicates]
    return "\n".join(lines)
