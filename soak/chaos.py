"""The supervisor that restarts what dies, and the nemesis that makes things die.

Both act only on processes this run started, by pid: a component's session
leader (its process group) or a direct child of a gunicorn master.
"""

import contextlib
import logging
import os
import random
import signal
import threading
import time
from collections import Counter

import psutil

from devstack.processes import LocalStack
from soak.schedule import Fault

log = logging.getLogger("soak")

#: Order of start-up: what each needs must already run.
COMPONENTS = ("redis", "geo", "worker", "gc", "api")


class Supervisor(threading.Thread):
    """Restart any of ``components`` whose process has exited, on the same port."""

    def __init__(self, stack: LocalStack, components: tuple[str, ...] = COMPONENTS) -> None:
        super().__init__(name="supervisor", daemon=True)
        self.stack = stack
        self.components = components
        self.restarts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            for name in self.components:
                self._revive(name)

    def _revive(self, name: str) -> None:
        with self.lock:
            proc = self.stack.procs.get(name)
            if proc is None or proc.poll() is None:
                return
            _kill_group(proc.pid)  # children a dead leader left behind
            try:
                self.stack.start(name)
                self.restarts[name] += 1
                log.info("supervisor: restarted %s", name)
            except (RuntimeError, TimeoutError):
                log.warning("could not restart %s; trying again", name)

    def healthy(self) -> bool:
        with self.lock:
            return all(self.stack.procs[name].poll() is None for name in self.components)


class Nemesis(threading.Thread):
    """Apply a planned list of faults, counting each by kind."""

    def __init__(self, stack: LocalStack, supervisor: Supervisor, faults: list[Fault],
                 seed: int) -> None:
        super().__init__(name="nemesis", daemon=True)
        self.stack = stack
        self.supervisor = supervisor
        self.faults = faults
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        for fault in self.faults:
            if self.stopping.wait(max(0.0, start + fault.at - time.monotonic())):
                return
            if self._apply(fault):
                self.counts[fault.kind] += 1

    def _apply(self, fault: Fault) -> bool:
        with self.supervisor.lock:
            pid, group = self._victim(fault.target)
        if pid is None:
            return False
        send = os.killpg if group else os.kill
        sig = signal.SIGKILL if fault.action == "kill" else signal.SIGSTOP
        log.info("nemesis: %s %s pid %d", fault.action, fault.target, pid)
        try:
            send(pid, sig)
            if fault.action == "stop":
                self.stopping.wait(fault.pause)
                send(pid, signal.SIGCONT)
        except ProcessLookupError:
            return False
        return True

    def _victim(self, target: str) -> tuple[int | None, bool]:
        """The pid to signal, and whether it leads a process group to signal whole."""
        if target in ("api-worker", "geo-worker"):
            master = self.stack.procs.get(target.split("-")[0])
            if master is None or master.poll() is not None:
                return None, False
            with contextlib.suppress(psutil.Error):
                children = psutil.Process(master.pid).children()
                if children:
                    return self.rng.choice(children).pid, False
            return None, False
        proc = self.stack.procs.get(target)
        if proc is None or proc.poll() is not None:
            return None, False
        return proc.pid, True


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
