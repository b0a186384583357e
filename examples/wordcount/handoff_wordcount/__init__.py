"""The ``wordcount`` purpose: how many words the uploaded text files hold.

A word is a run of characters between whitespace, as ``str.split`` sees it.
Files are read in chunks and only a count is kept, so their size does not
matter. A file that is not text in the configured encoding is refused with
``ValidationFailed``: the upload fails at once with that message, since
sending it again would not help.

One setting, ``HANDOFF_PROCESSOR_WORDS_ENCODING``: the files' text
encoding (default ``utf-8``). The worker hands it over as
``job.settings["encoding"]``.
"""

import codecs
from pathlib import Path
from typing import Any

from handoff.processors import Job, ValidationFailed, read_setting

CHUNK = 1024 * 1024


def process(job: Job) -> dict[str, Any]:
    """Count every file's words; the worker stores the result as the upload's."""
    encoding = read_setting(job.settings, "words", "encoding", _codec, "utf-8")
    words = sum(count_words(file.path, file.name, encoding) for file in job.files)
    return {"files": len(job.files), "words": words}


def count_words(path: Path, name: str, encoding: str) -> int:
    """The words in one file; a word cut by a chunk boundary is counted once."""
    decoder = codecs.getincrementaldecoder(encoding)()
    words, in_word = 0, False
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(CHUNK)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise ValidationFailed(f"{name} is not {encoding} text ({exc.reason})") from None
            if "\x00" in text:
                raise ValidationFailed(f"{name} is not a text file: it holds NUL bytes")
            if text:
                words += len(text.split()) - (in_word and not text[0].isspace())
                in_word = not text[-1].isspace()
            if not chunk:
                return words


def _codec(name: str) -> str:
    """A known codec's name; read_setting turns the ValueError into one naming the variable."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ValueError("no such encoding") from None
