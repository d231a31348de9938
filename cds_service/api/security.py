"""Client authentication for the HTTP adapters: one function and one decorator.

The audience a JWT must name is the URL actually called: ``RLS_CDS_PUBLIC_BASE_URL`` plus
the request path when set (behind a proxy the internal URL differs from the one the EHR
used), else the request's own URL. Query strings are never part of it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from cds_service.api import runtime
from cds_service.auth import Client

View = TypeVar("View", bound=Callable[..., Any])


def audience() -> str:
    """The URL this request was sent to, as the client saw it."""
    base = runtime().settings.public_base_url
    return base + request.path if base else request.base_url


def authenticated_client() -> Client:
    """The verified caller of this request (also kept in ``g.cds_client``), or 401/503."""
    client = runtime().authenticator.authenticate(request.headers.get("Authorization"), audience())
    g.cds_client = client
    return client


def client_required(view: View) -> View:
    """Decorate a view so that it runs only for a verified client (see authenticated_client)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        authenticated_client()
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]
