"""What the benchmark reads about a running service: peak RSS and bytes sent to disk.

Both come from /proc through psutil. RSS is sampled from a thread while an
upload runs, because a relay that buffers shows its peak only mid-upload and
gives the memory back before anyone asks afterwards. ``write_bytes`` counts
the bytes a process caused to be sent to storage, at page-dirtying time, so
a spool file that is deleted before it reaches the disk still shows up,
while pipes and tmpfs do not count.
"""

import threading
from collections.abc import Iterable, Mapping
from types import TracebackType

import psutil

from handoff.units import MiB

SAMPLE_SECONDS = 0.025


def workers(master_pid: int) -> list[psutil.Process]:
    """The worker processes of a gunicorn master (its direct children)."""
    try:
        return psutil.Process(master_pid).children()
    except psutil.NoSuchProcess:
        return []


def max_rss(processes: Iterable[psutil.Process]) -> int:
    """The largest resident set among ``processes``; vanished ones count as 0."""
    largest = 0
    for proc in processes:
        try:
            largest = max(largest, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            continue
    return largest


def peak_resident(pid: int) -> int:
    """VmHWM of ``pid`` in bytes: the largest resident size it ever had.

    The kernel keeps it, so no sampler can miss a short peak; it only grows,
    so a figure read after a second, larger upload says whether that upload
    needed more memory than the first.
    """
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"/proc/{pid}/status has no VmHWM")


class PeakRss:
    """Max RSS of any worker of each watched gunicorn master, while the block runs.

    Use as a context manager; ``peak_mib[name]`` holds the result. The
    worker lists are read once at entry: a worker that is replaced during
    the block would be a finding in itself, reported by :class:`DiskWrites`.
    """

    def __init__(self, masters: Mapping[str, int], interval: float = SAMPLE_SECONDS) -> None:
        self._masters = dict(masters)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._peak: dict[str, int] = dict.fromkeys(self._masters, 0)
        self._watched: dict[str, list[psutil.Process]] = {}

    @property
    def peak_mib(self) -> dict[str, float]:
        return {name: value / MiB for name, value in self._peak.items()}

    def __enter__(self) -> "PeakRss":
        self._watched = {name: workers(pid) for name, pid in self._masters.items()}
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        for name, procs in self._watched.items():
            self._peak[name] = max(self._peak[name], max_rss(procs))


def tree_write_bytes(master_pid: int) -> tuple[frozenset[int], int]:
    """The pids of a master and all its descendants, and their summed ``write_bytes``."""
    master = psutil.Process(master_pid)
    total = 0
    pids = set()
    for proc in [master, *master.children(recursive=True)]:
        try:
            total += proc.io_counters().write_bytes
            pids.add(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return frozenset(pids), total


class DiskWrites:
    """Bytes a process tree sent to storage while the block ran.

    ``stable`` is False when a process of the tree came or went in between:
    the counters of a process that exited are lost, so the figure would be
    a lower bound only.
    """

    def __init__(self, master_pid: int) -> None:
        self._master = master_pid
        self._before: tuple[frozenset[int], int] = (frozenset(), 0)
        self.bytes = 0
        self.stable = True

    def __enter__(self) -> "DiskWrites":
        self._before = tree_write_bytes(self._master)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        pids, total = tree_write_bytes(self._master)
        self.bytes = total - self._before[1]
        self.stable = pids == self._before[0]


def tree_cpu_seconds(master_pid: int) -> float:
    """User plus system CPU time of a master and its live descendants."""
    total = 0.0
    master = psutil.Process(master_pid)
    for proc in [master, *master.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def host_idle_and_total() -> tuple[float, float]:
    """Seconds all cores spent idle (or waiting for I/O), and in all, since boot."""
    times = psutil.cpu_times()
    # guest time is already counted in user time on Linux
    return times.idle + times.iowait, sum(times) - times.guest - times.guest_nice


class CpuTime:
    """CPU seconds each watched process tree used while the block ran.

    On two cores, throughput is mostly a question of CPU per byte: the
    relay's cost is the API's CPU on top of the geo service's. The host's
    idle share tells which bound a run hit: near zero, the cores were full;
    near half, one thread was the limit and the other core waited.
    """

    def __init__(self, masters: Mapping[str, int]) -> None:
        self._masters = dict(masters)
        self._before: dict[str, float] = {}
        self._host_before = (0.0, 0.0)
        self.seconds: dict[str, float] = {}
        self.host_idle_share = 0.0

    def __enter__(self) -> "CpuTime":
        self._before = {name: tree_cpu_seconds(pid) for name, pid in self._masters.items()}
        self._host_before = host_idle_and_total()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        idle, total = host_idle_and_total()
        spent = total - self._host_before[1]
        self.host_idle_share = (idle - self._host_before[0]) / spent if spent > 0 else 0.0
        self.seconds = {name: tree_cpu_seconds(pid) - self._before[name]
                        for name, pid in self._masters.items()}
