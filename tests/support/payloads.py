"""Large test files, written without holding them in memory."""

import os
from pathlib import Path

from handoff.units import MiB


def random_file(path: Path, mib: int) -> Path:
    """Write ``mib`` MiB of random bytes (one random MiB repeated) to ``path``."""
    block = os.urandom(MiB)
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(block)
    return path
