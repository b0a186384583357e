"""Who is asking, and what they may see.

Who is asking is one function of the request, an :data:`Authenticate`:

- it returns the tenant's name, which owns what that request uploads; a
  name is 1 to 128 of ``A-Z a-z 0-9 . _ @ + -``, since it travels in a
  header and in logs (anything else is the app's bug: a logged 500);
- or it refuses by raising: a :class:`Problem` (:func:`unauthorized` makes
  the usual 401) or a werkzeug ``HTTPException`` such as ``abort(403)``.
  Either is answered as problem+json.

It runs before every upload route, with the request's headers, before any
of the body is read. :func:`bearer_authenticator` is the standalone API's,
from ``HANDOFF_API_TOKENS``; an app that embeds the API passes its own to
:class:`api_service.Handoff` (or to :func:`api_service.app.create_app`).
"""

from collections.abc import Callable, Sequence
from typing import Any

from flask import Request

from handoff.auth import ANONYMOUS, Credential, bearer_token, tenant_for
from handoff.problems import Problem

Authenticate = Callable[[Request], str]


def unauthorized(detail: str = "a valid bearer token is required",
                 challenge: str = "Bearer") -> Problem:
    """The 401 refusal; ``challenge`` is the WWW-Authenticate value RFC 9110 requires with it."""
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


def bearer_authenticator(credentials: Sequence[Credential]) -> Authenticate:
    """The tenant of the request's bearer token; everyone is ANONYMOUS without tokens."""
    if not credentials:
        return lambda request: ANONYMOUS

    def authenticate(request: Request) -> str:
        tenant = tenant_for(bearer_token(request.headers.get("Authorization")), credentials)
        if tenant is None:
            raise unauthorized()
        return tenant

    return authenticate


def visible_to(tenant: str, status: dict[str, Any] | None) -> bool:
    """Whether ``tenant`` may see the upload with this geo ``status``.

    An upload being cancelled is gone for everyone. One recorded without a
    tenant (stored before tenants existed) is ANONYMOUS's.
    """
    if status is None or status.get("cancelled"):
        return False
    return (status.get("tenant") or ANONYMOUS) == tenant
