"""Rules for the form that carries an upload, applied by both services.

The API applies them before relaying a byte, the geo service before
recording the upload in its manifest: :class:`UploadForm` is the one place
that decides which parts are fields, which are files and which are refused,
so the two always agree on the files of an upload.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from handoff.config import Settings, variable
from handoff.fields import FieldError, parse_metadata
from handoff.multipart import (
    FieldValue,
    FileData,
    FileEnd,
    FileStart,
    FormEvent,
    FormParser,
    FormTooLarge,
    ParserLimits,
)

KNOWN_FIELDS = ("purpose", "metadata")
FILE_FIELD = "file"
# Bytes of UTF-8 a client's file name may take, as most file systems allow.
MAX_FILENAME = 255


@dataclass(frozen=True, kw_only=True)
class UploadLimits:
    """The bounds of one upload, the same in the API and the geo service.

    ``max_upload_size`` counts the raw request body, as a client, a proxy
    and Content-Length count it; ``max_file_size`` counts one file's bytes.
    ``chunk_size`` is how much of the body is read at a time, so how far
    past a limit reading can go before it is refused.
    """

    max_upload_size: int
    max_file_size: int
    form: ParserLimits
    chunk_size: int


def upload_limits(settings: Settings) -> UploadLimits:
    return UploadLimits(
        max_upload_size=settings.max_upload_size,
        max_file_size=settings.max_file_size,
        form=parser_limits(settings),
        chunk_size=settings.relay_chunk_size,
    )


def parser_limits(settings: Settings) -> ParserLimits:
    """The parser's limits from the settings of the same names, where their defaults live."""
    return ParserLimits(
        max_form_fields_size=settings.max_form_fields_size,
        max_files=settings.max_files,
        max_part_header_size=settings.max_part_header_size,
        max_part_headers=settings.max_part_headers,
        max_preamble_size=settings.max_preamble_size,
        max_epilogue_size=settings.max_epilogue_size,
    )


def over_limit(exc: FormTooLarge) -> tuple[str, str]:
    """The variable of the limit a form went over, and a message that names it."""
    setting = variable(exc.limit)
    return setting, f"{exc}; the limit is {setting}"


class UploadForm:
    """An upload's form: the parser's events, less what the rules leave out or refuse.

    Fields come first, before any file part, and each known one at most
    once; files are the parts named ``file``. A file input left empty in a
    browser (a part with ``filename=""`` and no bytes) is no file and is
    skipped.
    """

    def __init__(self, boundary: bytes, limits: ParserLimits) -> None:
        self._parser = FormParser(boundary, limits)
        self.fields: dict[str, str] = {}
        self._file_parts = 0
        self._skipping = False

    @property
    def complete(self) -> bool:
        return self._parser.complete

    @property
    def in_files(self) -> bool:
        """Whether a file part, even a skipped one, has begun: no field may follow."""
        return self._file_parts > 0

    def feed(self, data: bytes | None) -> Iterator[FormEvent]:
        for event in self._parser.feed(data):
            if self._accept(event):
                yield event

    def _accept(self, event: FormEvent) -> bool:
        if isinstance(event, FileData):
            if self._skipping and event.data:
                raise FieldError("a file part with an empty filename carries data; "
                                 "name the file")
            return not self._skipping
        if isinstance(event, FileEnd):
            skipped, self._skipping = self._skipping, False
            return not skipped
        if isinstance(event, FileStart):
            return self._file(event)
        assert isinstance(event, FieldValue)
        self._field(event)
        return True

    def _file(self, event: FileStart) -> bool:
        if event.name != FILE_FIELD:
            raise FieldError(f"form field {event.name!r} is a file; files go in parts "
                             f"named {FILE_FIELD!r}")
        self._file_parts += 1
        if not event.filename:
            self._skipping = True
            return False
        if len(event.filename.encode()) > MAX_FILENAME:
            raise FieldError(f"a file name is longer than {MAX_FILENAME} bytes of UTF-8")
        return True

    def _field(self, event: FieldValue) -> None:
        if event.name == FILE_FIELD:
            raise FieldError(f"the part named {FILE_FIELD!r} has no filename; "
                             "a file part needs one")
        if self.in_files:
            raise FieldError(f"field {event.name!r} comes after a file; "
                             "fields must come before the files")
        check_field(event.name, set(self.fields))
        self.fields[event.name] = event.value

    def metadata(self) -> dict[str, Any]:
        return parse_metadata(self.fields.get("metadata", ""))

    def purpose(self, known: frozenset[str] | set[str]) -> str:
        return parse_purpose(self.fields.get("purpose"), known)


def check_field(name: str, seen: set[str]) -> None:
    if name not in KNOWN_FIELDS:
        raise FieldError(f"unknown form field {name!r}; expected {', '.join(KNOWN_FIELDS)}")
    if name in seen:
        raise FieldError(f"form field {name!r} is given more than once")
    seen.add(name)


def parse_purpose(text: str | None, known: frozenset[str] | set[str]) -> str:
    if text is None:
        raise FieldError("the purpose field is missing; it names the processor to run")
    purpose = text.strip()
    if not purpose:
        raise FieldError("the purpose field is empty")
    if purpose not in known:
        raise FieldError(f"unknown purpose {purpose!r}; known: {', '.join(sorted(known))}")
    return purpose
