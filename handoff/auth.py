"""Bearer-token checks, in constant time, for both services."""

import hmac
from collections.abc import Iterable


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_allowed(token: str | None, allowed: Iterable[str]) -> bool:
    """True when ``token`` equals one of ``allowed``.

    Every candidate is compared, so the time taken does not reveal which
    one (or how much of one) matched.
    """
    if token is None:
        return False
    given = token.encode()
    found = False
    for candidate in allowed:
        found |= hmac.compare_digest(given, candidate.encode())
    return found
