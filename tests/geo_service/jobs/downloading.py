"""A FileStore that hands out no local paths, so the worker downloads as it would from a bucket.

Only :meth:`~geo_service.store.UploadStore.local_path` differs: the bytes
still come through the real ``read_file``, whose calls are counted.
"""

from collections.abc import Iterator

from geo_service.store import FileStore


class CountingStore(FileStore):
    """Counts ``read_file`` calls per file index; its files are local."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reads: list[int] = []

    def read_file(self, upload_id: str, index: int = 0, start: int = 0,
                  size: int | None = None) -> Iterator[bytes]:
        self.reads.append(index)
        return super().read_file(upload_id, index, start, size)


class RemoteStore(CountingStore):
    """No local paths: every file of a job is downloaded into the worker's scratch space."""

    def local_path(self, upload_id: str, index: int) -> None:
        return None
