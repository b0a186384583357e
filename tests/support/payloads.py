"""Large test files, written without holding them in memory."""

import hashlib
import os
import random
from collections.abc import Iterator
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


class GeneratedPayload:
    """``size`` bytes made block by block from ``seed``, hashed as they are made.

    A test can then send gigabytes without holding or writing them: the
    same seed gives the same bytes, and once :meth:`blocks` is exhausted
    :attr:`sha256` is the digest of all it gave. Each block is a window at
    a shifting offset into a random pool, so no two neighbouring blocks are
    alike and a resume from a wrong offset changes the digest.
    """

    POOL = 8 * MiB
    BLOCK = MiB
    STEP = MiB + 4099

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self._pool = memoryview(random.Random(seed).randbytes(self.POOL + self.BLOCK))
        self._digest = hashlib.sha256()
        self._done = False

    def blocks(self) -> Iterator[memoryview]:
        """The payload, a block at a time; may be iterated once."""
        assert not self._done, "a payload is generated once"
        for index, sent in enumerate(range(0, self.size, self.BLOCK)):
            start = index * self.STEP % self.POOL
            block = self._pool[start:start + min(self.BLOCK, self.size - sent)]
            self._digest.update(block)
            yield block
        self._done = True

    def write(self, path: Path) -> Path:
        """Write the payload to ``path``, for a client that sends files (tuspy, curl)."""
        with open(path, "wb") as handle:
            for block in self.blocks():
                handle.write(block)
        return path

    @property
    def sha256(self) -> str:
        assert self._done, "the payload was not generated to its end"
        return self._digest.hexdigest()
