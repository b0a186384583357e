"""Field rules that the client applies as well as both services.

Kept free of the services' dependencies (werkzeug, flask), so that the
client installed on its own checks ``metadata`` with the API's own rule and
a typo fails before gigabytes are sent.
"""

from typing import Any

from handoff.jsontext import JsonRefused, loads

# How deep ``metadata`` may nest objects and arrays, itself counted as the first level.
MAX_METADATA_DEPTH = 32


class FieldError(ValueError):
    """A form field is missing, repeated or has a value that cannot be used."""


def parse_metadata(text: str) -> dict[str, Any]:
    """The ``metadata`` field: a JSON object, or an empty one when absent.

    The one rule for metadata, wherever it arrives (a form field, the tus
    ``Upload-Metadata`` key, the client's command line): RFC 8259 JSON, so
    no NaN or infinities, nesting at most :data:`MAX_METADATA_DEPTH` levels.
    """
    if not text.strip():
        return {}
    try:
        value = loads(text, MAX_METADATA_DEPTH)
    except JsonRefused as exc:
        raise FieldError(f"metadata {exc}") from None
    if not isinstance(value, dict):
        raise FieldError("metadata must be a JSON object")
    return value
