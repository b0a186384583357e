"""What an object store needs from S3 or Azure Blob: the few calls both offer.

:class:`~geo_service.store.objects.ObjectStore` keeps uploads as objects
through this interface alone, so the layout of objects is written once and
each provider is a thin adapter of its own SDK (``s3.py``, ``azure.py``).

Keys are relative to the store's prefix: the adapter adds it, so two stores
in one bucket never see each other. A large object is written in parts (an
S3 multipart upload, Azure staged blocks) and is no object at all until
:meth:`Bucket.complete`: that is how a half-written file stays invisible.
Parts still pending are listed by :meth:`Bucket.pending`, so the sweeper
can abort what a dead writer left.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


class BucketUnavailable(Exception):
    """The object store did not answer, or answered with a server error; worth retrying."""


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key (relative to the prefix), size and last write."""

    key: str
    size: int
    modified: float  # POSIX time
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingWrite:
    """A large object begun and neither completed nor aborted."""

    key: str
    handle: str  # S3's upload id; Azure's block id stem
    started: float  # POSIX time


@dataclass(frozen=True)
class Part:
    """One part of a large object, as :meth:`Bucket.complete` needs it back."""

    number: int  # 1-based, in order
    tag: str  # S3's ETag; Azure's block id
    size: int


class Bucket(ABC):
    """One bucket (or container) and prefix; see the module's docstring."""

    #: The smallest part but the last: 5 MiB on S3.
    min_part_size: int
    #: The most parts one object may have: 10,000 on S3.
    max_parts: int

    @abstractmethod
    def describe(self) -> str:
        """``s3://bucket/prefix`` or ``az://container/prefix``, for messages."""

    @abstractmethod
    def problem(self) -> str | None:
        """Why the bucket cannot be used now (unreachable, missing, refused), or None."""

    # -- whole objects ----------------------------------------------------------

    @abstractmethod
    def put(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Write a small object whole, replacing any; readers see the old or the new one."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """A small object's bytes; None if there is none."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """The object's size, last write and metadata; None if there is none."""

    @abstractmethod
    def read(self, key: str, start: int = 0, size: int | None = None) -> Iterator[bytes]:
        """``size`` bytes (or the rest) from ``start``, streamed; FileNotFoundError if absent."""

    @abstractmethod
    def listing(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order (no metadata)."""

    @abstractmethod
    def folders(self, prefix: str) -> Iterator[str]:
        """The distinct next path segments under ``prefix`` (S3's common prefixes)."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete the objects; a key already gone is no error."""

    @abstractmethod
    def copy(self, source: str, target: str) -> None:
        """Copy an object inside the store, without its bytes passing through here."""

    # -- large objects, written in parts --------------------------------------

    @abstractmethod
    def begin(self, key: str, metadata: dict[str, str] | None = None) -> str:
        """Start a large object; returns the handle its parts are sent under."""

    @abstractmethod
    def put_part(self, key: str, handle: str, number: int, data: bytes | memoryview) -> Part:
        """Send part ``number`` (from 1); safe to call from several threads at once."""

    @abstractmethod
    def copy_part(self, key: str, handle: str, number: int, source: str, start: int,
                  size: int) -> Part:
        """Make part ``number`` from a range of another object, inside the store."""

    @abstractmethod
    def complete(self, key: str, handle: str, parts: list[Part]) -> None:
        """Join the parts in order into the object, which appears whole at once."""

    @abstractmethod
    def abort(self, key: str, handle: str) -> None:
        """Drop the parts; the object never appears. Aborting twice is no error."""

    @abstractmethod
    def pending(self, prefix: str) -> Iterator[PendingWrite]:
        """Large objects under ``prefix`` begun and neither completed nor aborted."""
