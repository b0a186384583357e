"""What both services do with an upload's body: count it, parse it, hash its files.

The API and the geo service read the same body and must come to the same
files, sizes and digests, and refuse at the same limits; so one
:class:`FormConsumer` does that work for both. What each does with a file's
bytes differs (the API relays the raw body elsewhere and keeps nothing, the
geo service stores every file), and sits behind a :class:`FileSink`.
"""

import dataclasses
import hashlib
from typing import Any, Protocol

from handoff.form import UploadForm, UploadLimits, over_limit
from handoff.multipart import FileData, FileEnd, FileStart, FormEvent, FormTooLarge


class TooLarge(Exception):
    """The body, a file or the form's structure went over a limit (HTTP 413).

    ``limit`` is the variable of a form limit (``HANDOFF_MAX_FILES`` and the
    like), for the answer to name; None for the size limits, whose message
    gives the size.
    """

    def __init__(self, detail: str, limit: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.limit = limit


class FileSink(Protocol):
    """Where a file's bytes go: told of each file as it starts, grows and ends."""

    def start(self, index: int, event: FileStart) -> None: ...

    def write(self, data: bytes | memoryview) -> None: ...

    def end(self) -> None: ...


class NoSink:
    """For a consumer that only counts and hashes."""

    def start(self, index: int, event: FileStart) -> None:
        pass

    def write(self, data: bytes | memoryview) -> None:
        pass

    def end(self) -> None:
        pass


@dataclasses.dataclass
class FileEntry:
    """One file of the form as it passed: what a manifest records of it."""

    index: int
    field: str
    name: str
    content_type: str
    size: int = 0
    _digest: Any = dataclasses.field(default_factory=hashlib.sha256, init=False, repr=False,
                                     compare=False)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def add(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        self._digest.update(data)


class FormConsumer:
    """One upload's body, fed as it is read; refuses with :class:`TooLarge`.

    The raw bytes are counted against ``max_upload_size`` before they are
    parsed, so nothing of a chunk over the limit reaches a sink. A file's
    bytes are counted against ``max_file_size`` before the sink gets them,
    so a stored file never holds more than the limit. Form errors pass as
    the form raises them (``MalformedForm``, ``FieldError``), a body that
    ends before its closing boundary among them.
    """

    def __init__(self, boundary: bytes, limits: UploadLimits, sink: FileSink | None = None) -> None:
        self.form = UploadForm(boundary, limits.form)
        self.files: list[FileEntry] = []
        self.received = 0
        self._limits = limits
        self._sink = NoSink() if sink is None else sink
        self._current: FileEntry | None = None

    def feed(self, data: bytes | None) -> None:
        """Take the next bytes of the body; None at its end."""
        self.received += len(data or b"")
        if self.received > self._limits.max_upload_size:
            raise TooLarge(f"the upload exceeds {self._limits.max_upload_size} bytes")
        try:
            for event in self.form.feed(data):
                self._on(event)
        except FormTooLarge as exc:
            setting, detail = over_limit(exc)
            raise TooLarge(detail, limit=setting) from None

    def _on(self, event: FormEvent) -> None:
        if isinstance(event, FileData):
            self._write(event.data)
        elif isinstance(event, FileStart):
            self._start(event)
        elif isinstance(event, FileEnd):
            self._sink.end()
            self._current = None

    def _start(self, event: FileStart) -> None:
        self._current = FileEntry(index=len(self.files), field=event.name, name=event.filename,
                                  content_type=event.content_type)
        self.files.append(self._current)
        self._sink.start(self._current.index, event)

    def _write(self, data: bytes | memoryview) -> None:
        current = self._current
        assert current is not None
        if current.size + len(data) > self._limits.max_file_size:
            raise TooLarge(f"file {current.name!r} exceeds {self._limits.max_file_size} bytes")
        current.add(data)
        self._sink.write(data)
