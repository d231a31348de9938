"""Who may call the service.

Until JWT verification lands (security issue), there are exactly two policies: the demo
mode lets every caller in and says so loudly; every other configuration has no trusted
client yet and therefore refuses every call with 401 (fail closed, never open).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cds_service.errors import AuthenticationFailed


@dataclass(frozen=True)
class Client:
    """The authenticated caller (the EHR), as far as it is known."""

    issuer: str
    fhir_servers: tuple[str, ...] | None = None
    """FHIR server prefixes this client may name; None: the deployment's allow-list."""
    tenant: str | None = None


class Authenticator(Protocol):
    def authenticate(self, authorization: str | None, audience: str) -> Client:
        """Verify the Authorization header value for a call to `audience`; raise if not."""
        ...


class DemoAuthenticator:
    """Demo mode: no verification at all; every caller is 'demo'."""

    def authenticate(self, authorization: str | None, audience: str) -> Client:
        return Client(issuer="demo")


class NoTrustedClients:
    """Production mode with no trusted client configured: nobody gets in."""

    def authenticate(self, authorization: str | None, audience: str) -> Client:
        if not (authorization or "").startswith("Bearer "):
            raise AuthenticationFailed("a bearer JWT from a trusted CDS client is required")
        raise AuthenticationFailed("no trusted CDS clients are configured on this service")
