"""Client authentication for the HTTP adapters.

The audience a JWT must name is the URL the EHR called: ``RLS_CDS_PUBLIC_BASE_URL`` plus the
request path. Outside demo mode the service does not start without that setting, so the
caller's ``Host`` header never decides the audience (demo mode checks no token). Query
strings are never part of it.

Credentials come in exactly one ``Authorization`` header (RFC 6750 section 2.1). A second
one, or a token in the query string, is refused with 400 (RFC 6750 section 3.1:
invalid_request) before anything is read; cookies are never read; a header longer than any
client JWT we accept gets 431.
"""

from __future__ import annotations

from flask import g, request

from cds_service.api import runtime
from cds_service.auth import Client
from cds_service.auth.verify import MAX_TOKEN_CHARS
from cds_service.errors import CredentialsMisplaced, HeaderTooLarge

#: Longest Authorization header read: "Bearer " and the longest token accepted.
MAX_AUTHORIZATION_CHARS = len("Bearer ") + MAX_TOKEN_CHARS


def audience() -> str:
    """The URL this request was sent to, as the client saw it."""
    base = runtime().settings.public_base_url
    return base + request.path if base else request.base_url


def authorization() -> str | None:
    """The one Authorization header of the request, or CredentialsMisplaced/HeaderTooLarge."""
    if "access_token" in request.args:
        raise CredentialsMisplaced(
            "send the token in the Authorization header only, never in the URL"
        )
    values = request.headers.getlist("Authorization")
    # WSGI servers (werkzeug, gunicorn) join repeated headers with commas; a bearer token
    # never holds one (RFC 6750 b64token)
    if len(values) > 1 or any("," in value for value in values):
        raise CredentialsMisplaced("send exactly one Authorization header")
    if values and len(values[0]) > MAX_AUTHORIZATION_CHARS:
        raise HeaderTooLarge(
            f"the Authorization header is longer than {MAX_AUTHORIZATION_CHARS} characters"
        )
    return values[0] if values else None


def authenticated_client() -> Client:
    """The verified caller of this request (also kept in ``g.cds_client``), or 400/401/431/
    429/503."""
    client = runtime().authenticator.authenticate(authorization(), audience())
    g.cds_client = client
    return client
