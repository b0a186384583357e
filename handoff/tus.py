"""The tus 1.0.0 header grammar, for the API that speaks tus and the geo service behind it.

Pure parsing and formatting, no Flask: the API checks every header before
it relays a byte, and the geo service, the authority on an upload's bytes,
checks the same headers with the same rules when they reach it.
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any

VERSION = "1.0.0"
OFFSET_MEDIA_TYPE = "application/offset+octet-stream"
# Algorithm names as tus writes them -> hashlib's constructors.
CHECKSUM_ALGORITHMS: dict[str, Any] = {"sha1": hashlib.sha1, "sha256": hashlib.sha256,
                                       "md5": hashlib.md5}
# The status tus gives a PATCH whose bytes do not match its Upload-Checksum.
CHECKSUM_MISMATCH = 460

_KEY = re.compile(r"[^\s,]+")


class HeaderError(ValueError):
    """A tus header is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Concat:
    """An ``Upload-Concat``: a partial upload, or the final one made of ``parts`` (their URLs)."""

    parts: tuple[str, ...] | None = None

    @property
    def final(self) -> bool:
        return self.parts is not None

    def header(self) -> str:
        return "partial" if self.parts is None else "final;" + " ".join(self.parts)


@dataclass(frozen=True)
class Checksum:
    """An ``Upload-Checksum``: the algorithm and the digest the bytes must have."""

    algorithm: str
    digest: bytes

    def hasher(self) -> Any:
        return CHECKSUM_ALGORITHMS[self.algorithm]()


def parse_offset(value: str | None, header: str) -> int | None:
    """A non-negative decimal value (``Upload-Offset``, ``Upload-Length``); None if absent."""
    if value is None:
        return None
    if not value.isascii() or not value.isdigit():
        raise HeaderError(f"{header} must be a non-negative integer")
    return int(value)


def parse_checksum(value: str | None) -> Checksum | None:
    """``<algorithm> <base64 digest>``; None when the header is absent."""
    if value is None:
        return None
    parts = value.split()
    if len(parts) != 2:
        raise HeaderError("Upload-Checksum must be '<algorithm> <base64 digest>'")
    algorithm, encoded = parts
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise HeaderError(f"Upload-Checksum algorithm {algorithm!r} is not supported; "
                          f"supported: {','.join(CHECKSUM_ALGORITHMS)}")
    digest = _b64(encoded, "Upload-Checksum")
    if len(digest) != CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise HeaderError(f"Upload-Checksum digest has the wrong length for {algorithm}")
    return Checksum(algorithm, digest)


def parse_concat(value: str | None) -> Concat | None:
    """``partial`` or ``final;<url> <url> ...``; None when the header is absent."""
    if value is None:
        return None
    if value.strip() == "partial":
        return Concat()
    kind, _, urls = value.partition(";")
    parts = tuple(urls.split())
    if kind.strip() != "final" or not parts:
        raise HeaderError("Upload-Concat must be 'partial' or 'final;' and the partial "
                          "uploads' URLs, separated by spaces")
    return Concat(parts)


def parse_upload_metadata(value: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs, the value optional.

    Keys are unique and carry no spaces or commas; values must be UTF-8.
    """
    pairs: dict[str, str] = {}
    if value is None or not value.strip():
        return pairs
    for item in value.split(","):
        parts = item.split()
        if not parts or len(parts) > 2 or not _KEY.fullmatch(parts[0]):
            raise HeaderError("Upload-Metadata must be comma-separated 'key base64value' pairs")
        key = parts[0]
        if key in pairs:
            raise HeaderError(f"Upload-Metadata gives the key {key!r} more than once")
        raw = _b64(parts[1], f"Upload-Metadata value of {key!r}") if len(parts) == 2 else b""
        try:
            pairs[key] = raw.decode()
        except UnicodeDecodeError:
            raise HeaderError(f"Upload-Metadata value of {key!r} is not UTF-8") from None
    return pairs


def encode_metadata(pairs: dict[str, str]) -> str:
    """The ``Upload-Metadata`` header for ``pairs``: :func:`parse_upload_metadata` reversed."""
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
                    for key, value in pairs.items())


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HeaderError(f"{what} is not valid base64") from None
