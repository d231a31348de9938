"""The authenticated caller and the interface every authentication policy offers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
