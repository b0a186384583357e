"""Large test files, written without holding them in memory."""

import hashlib
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


def unique_random_file(path: Path, mib: int) -> Path:
    """Write ``mib`` MiB of fresh random bytes to ``path``: a resume from a wrong offset
    (even a whole MiB off) changes its sha256."""
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(os.urandom(MiB))
    return path


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read a few MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()
