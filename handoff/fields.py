"""Field rules that the client applies as well as both services.

Kept free of the services' dependencies (werkzeug, flask), so that the
client installed on its own checks ``metadata`` with the API's own rule and
a typo fails before gigabytes are sent.
"""

import json
from typing import Any


class FieldError(ValueError):
    """A form field is missing, repeated or has a value that cannot be used."""


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
