"""The authenticated caller, whose patient an id names, and the authentication interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cds_service.outbound import AllowList


@dataclass(frozen=True)
class Client:
    """The authenticated caller (the EHR), as far as it is known."""

    issuer: str
    fhir_servers: AllowList | None = None
    """FHIR server prefixes this client may name; None: the deployment's allow-list."""
    tenant: str | None = None


@dataclass(frozen=True)
class PatientScope:
    """A patient as one client knows it: FHIR ids are unique only within one EHR tenant's
    FHIR server, so the same id from another client, tenant or server is another patient.
    Cards, feedback and suppression are keyed by all four parts."""

    issuer: str
    tenant: str | None
    fhir_server: str | None
    patient_id: str


class Authenticator(Protocol):
    def authenticate(self, authorization: str | None, audience: str) -> Client:
        """Verify the Authorization header value for a call to `audience`; raise if not."""
        ...
