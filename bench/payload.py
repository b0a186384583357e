"""The files the client uploads: random bytes, made once per size, removed at the end.

``os.urandom`` runs at about 150 MB/s on the reference machine, so a 4 GiB
file would take half a minute to make. Instead a 64 MiB pool of random bytes
is written out at a shifting offset. Nothing on the byte path compresses or
deduplicates, so this is as good as fresh randomness for what is measured,
and unlike zeros it cannot be special-cased by a filesystem or a page cache.
"""

import os
import time
from pathlib import Path

from handoff.units import GiB, MiB

POOL_SIZE = 64 * MiB
CHUNK = MiB
STEP = CHUNK + 4099


class Payloads:
    """Random files of given sizes in ``folder``, made on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._pool = memoryview(os.urandom(POOL_SIZE))
        self._made: dict[int, Path] = {}
        self._written = 0
        self._write_cpu = 0.0

    @property
    def write_cpu_per_gib(self) -> float | None:
        """CPU seconds this process spent per GiB written so far, the kernel's share included.

        Writing into the run's folder is what the geo service does with every
        byte it stores, so this is the run's reading of the machine: on a
        virtual machine whose host takes freed guest memory back, memory that
        is used again after a few seconds costs several times what it costs
        when it stays with the guest, and the geo service pays the same.
        """
        return self._write_cpu / (self._written / GiB) if self._written else None

    def get(self, size: int) -> Path:
        """A file of exactly ``size`` random bytes."""
        if size not in self._made:
            path = self.folder / f"payload-{size}.bin"
            self._write(path, size)
            self._made[size] = path
        return self._made[size]

    def prefault(self, size: int) -> None:
        """Write and delete ``size`` bytes in the payload folder before anything is timed.

        On a virtual machine the host may back guest memory only when it is
        first touched: writing 6 GiB to tmpfs took 12.5 s the first time and
        6.2 s after on the reference machine. Without this, whichever run
        first needs fresh memory (the 4 GiB point) would pay for it.
        """
        path = self.folder / "prefault.bin"
        try:
            self._write(path, size)
        finally:
            path.unlink(missing_ok=True)

    def drop(self, size: int) -> None:
        """Delete the file of ``size`` bytes to give its space back."""
        path = self._made.pop(size, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def _write(self, path: Path, size: int) -> None:
        started = time.thread_time()
        offset = 0
        with open(path, "wb") as out:
            for written in range(0, size, CHUNK):
                count = min(CHUNK, size - written)
                start = offset % (POOL_SIZE - CHUNK)
                out.write(self._pool[start : start + count])
                offset += STEP
        self._write_cpu += time.thread_time() - started
        self._written += size
