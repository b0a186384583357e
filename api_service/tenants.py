"""Who is asking, and what they may see.

:func:`bearer_authenticator` is the API's only answer to "who is asking".
An application that embeds the API with its own authentication passes
another ``Authenticate`` to :func:`api_service.app.create_app`: a function
of the request that returns a tenant name or raises a 401 :class:`Problem`.
"""

from collections.abc import Callable, Sequence
from typing import Any

from flask import Request

from handoff.auth import ANONYMOUS, Credential, bearer_token, tenant_for
from handoff.problems import Problem

Authenticate = Callable[[Request], str]


def unauthorized() -> Problem:
    return Problem(401, "unauthorized", "a valid bearer token is required",
                   headers={"WWW-Authenticate": "Bearer"})


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
