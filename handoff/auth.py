"""Bearer tokens and the tenants they stand for, checked in constant time."""

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import NamedTuple

# Who owns what the open API (no tokens configured) is sent.
ANONYMOUS = "anonymous"
_TENANT_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")


class Credential(NamedTuple):
    """One accepted API token and the tenant it authenticates."""

    tenant: str
    token: str


def is_tenant_name(text: str) -> bool:
    """Tenant names travel in a header and in logs, so they are kept plain."""
    return _TENANT_NAME.fullmatch(text) is not None


def parse_credentials(text: str) -> tuple[Credential, ...]:
    """``name:token`` pairs (or bare tokens), separated by commas or new lines.

    A bare token is a tenant of its own, named after a digest of the token
    rather than the token itself, so that logs naming the tenant never
    reveal a credential. Raises ValueError for a pair with an empty part,
    an invalid name or a token listed twice.
    """
    credentials: list[Credential] = []
    for entry in re.split(r"[,\n]", text):
        entry = entry.strip()
        if not entry:
            continue
        if ":" in entry:
            tenant, _, token = (part.strip() for part in entry.partition(":"))
            if not tenant or not token:
                raise ValueError("a name:token pair needs both a name and a token")
            if not is_tenant_name(tenant):
                raise ValueError(f"tenant name {tenant!r} may only use A-Z a-z 0-9 . _ @ + -")
        else:
            tenant, token = _bare_tenant(entry), entry
        credentials.append(Credential(tenant, token))
    if len({c.token for c in credentials}) != len(credentials):
        raise ValueError("a token is listed more than once")
    return tuple(credentials)


def _bare_tenant(token: str) -> str:
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def tenant_for(token: str | None, credentials: Iterable[Credential]) -> str | None:
    """The tenant whose credential is ``token``, or None.

    Every candidate is compared, so the time taken does not reveal which
    one (or how much of one) matched.
    """
    if token is None:
        return None
    given = token.encode()
    found: str | None = None
    for credential in credentials:
        if hmac.compare_digest(given, credential.token.encode()):
            found = credential.tenant
    return found


def token_allowed(token: str | None, allowed: Iterable[str]) -> bool:
    """True when ``token`` equals one of ``allowed`` (in constant time, as above)."""
    return tenant_for(token, (Credential("", candidate) for candidate in allowed)) is not None
