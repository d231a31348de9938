"""What can go wrong on a FHIR request, in our terms (callers never see requests' exceptions).

    FhirError
    ├── FhirRefused       the server will not serve us: 401 or 403 (hook answers 412)
    ├── FhirUnreachable   no connection could be made at all (hook answers 412)
    ├── FhirUnavailable   timeout, 5xx, 429, or the hook's deadline ran out (hook degrades)
    ├── FhirMalformed     a 2xx answer that is not a FHIR JSON resource (hook degrades)
    └── FhirUrlRefused    the URL fails the service's URL discipline; never sent (hook answers 412)

Messages name the URL path and status only: never a token, never a response body.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests


class FhirError(Exception):
    """Base of every failure to get data from a FHIR server."""

    fatal = False
    """True when retrying within this hook cannot help (refused or unreachable)."""


class FhirRefused(FhirError):
    """Raised when the server answers 401 or 403 (token missing, expired or out of scope)."""

    fatal = True


class FhirUnreachable(FhirError):
    """Raised when no TCP/TLS connection could be made (DNS, refused, TLS failure)."""

    fatal = True


class FhirUnavailable(FhirError):
    """Raised on a timeout, a 5xx or 429 answer, or when the hook's deadline has passed."""


class FhirMalformed(FhirError):
    """Raised when a success answer is not a FHIR resource in JSON."""


class FhirUrlRefused(FhirError):
    """Raised when a URL to fetch fails the URL discipline (cds_service.outbound): it is
    never sent, and asking again cannot help."""

    fatal = True


@contextmanager
def translating() -> Iterator[None]:
    """Map requests' exceptions to FhirError, so no foreign type crosses this boundary."""
    try:
        yield
    except requests.Timeout as exc:
        raise FhirUnavailable("timed out") from exc
    except requests.ConnectionError as exc:
        raise FhirUnreachable("could not connect") from exc
    except requests.RequestException as exc:
        raise FhirUnavailable(type(exc).__name__) from exc
