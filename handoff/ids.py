"""Upload ids: canonical lowercase UUIDs, checked before any path is built."""

import re
import uuid

_CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_upload_id(text: str) -> bool:
    """True only for the canonical lowercase 36-character form.

    Anything looser (upper case, braces, URNs) would give one upload several
    names on disk, so it is refused rather than normalised.
    """
    return bool(_CANONICAL.fullmatch(text))


def new_upload_id() -> str:
    return str(uuid.uuid4())
