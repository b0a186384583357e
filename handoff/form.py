"""Rules for the form fields that travel with an upload.

Both services check them: the API before relaying a byte, the geo service
before recording them in the manifest.
"""

import json
from typing import Any


class FieldError(ValueError):
    """A form field is missing, repeated or has a value that cannot be used."""


KNOWN_FIELDS = ("purpose", "metadata")


def check_field(name: str, seen: set[str]) -> None:
    if name not in KNOWN_FIELDS:
        raise FieldError(f"unknown form field {name!r}; expected {', '.join(KNOWN_FIELDS)}")
    if name in seen:
        raise FieldError(f"form field {name!r} is given more than once")
    seen.add(name)


def parse_metadata(text: str) -> dict[str, Any]:
    """The ``metadata`` field: a JSON object, or an empty one when absent."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FieldError(f"metadata is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(value, dict):
        raise FieldError("metadata must be a JSON object")
    return value


def parse_purpose(text: str, known: frozenset[str] | set[str]) -> str:
    purpose = text.strip()
    if not purpose:
        raise FieldError("the purpose field is empty")
    if purpose not in known:
        raise FieldError(f"unknown purpose {purpose!r}; known: {', '.join(sorted(known))}")
    return purpose
