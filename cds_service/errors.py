"""Errors the HTTP boundary answers with, and the one place they become responses.

    ServiceError
    ├── RequestInvalid         400: not JSON, wrong content type, fields missing, wrong hook
    │   └── CredentialsMisplaced 400: two Authorization headers, a token in the query
    ├── AuthenticationFailed   401: no or unacceptable credentials
    ├── UnknownService         404: no service with that id
    ├── UnknownCards           404: feedback about cards not issued to this client here
    ├── PrefetchUnavailable    412: data the rules need is missing and cannot be fetched
    ├── QuotaExceeded          429: the client used up a quota; Retry-After says when to retry
    ├── HeaderTooLarge         431: an Authorization header too long to be a client JWT
    ├── CardsNotRecordedYet    503: feedback on cards issued a moment ago; retry in 1 s
    ├── StoreUnavailable       503: the database cannot be reached
    └── ReplayStoreUnavailable 503: the JWT replay store cannot be asked (fail closed)

ConfigurationInvalid (not an HTTP error) stops the start-up with a message for the operator.

Bodies never echo request content: it may hold patient data or tokens. Every answer these
handlers write, like every other answer, gets the headers of cds_service.api.headers.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of the errors that map to an HTTP status with a JSON body."""

    status = 500
    code = "internal-error"
    retry_after_s: int | None = None
    """Sent as Retry-After (503 answers default to 5 s)."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class RequestInvalid(ServiceError):
    """Raised when a request body or its headers do not form a valid CDS Hooks call."""

    status = 400
    code = "invalid-request"


class CredentialsMisplaced(RequestInvalid):
    """Raised when credentials come twice or outside the Authorization header (RFC 6750
    section 3.1: invalid_request)."""


class AuthenticationFailed(ServiceError):
    """Raised when the caller is not an authenticated, trusted CDS client."""

    status = 401
    code = "unauthorized"


class UnknownService(ServiceError):
    """Raised when the URL names a service this deployment does not offer."""

    status = 404
    code = "unknown-service"


class UnknownCards(ServiceError):
    """Raised when feedback names a card this service did not issue to the calling client
    at this service; whether it exists for another client is never said."""

    status = 404
    code = "unknown-card"


class PrefetchUnavailable(ServiceError):
    """Raised when prefetch data the rules need is missing and cannot be fetched (spec 412)."""

    status = 412
    code = "prefetch-unavailable"

    def __init__(
        self, message: str, details: list[dict[str, Any]] | None = None, gathered: Any = None
    ):
        super().__init__(message, details)
        self.gathered = gathered
        """What the fetch tried before giving up (cds_service.fhir.gather.Gathered), for an
        operator's report (``rls-cds check``); never in the answer's body."""


class QuotaExceeded(ServiceError):
    """Raised when a client has used up a quota (feedback items, replay records)."""

    status = 429
    code = "too-many-requests"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CardsNotRecordedYet(ServiceError):
    """Raised when feedback names cards that may have been issued a moment ago and not be
    recorded yet (see card_ids); the client retries shortly."""

    status = 503
    code = "cards-not-recorded-yet"
    retry_after_s = 1


class HeaderTooLarge(ServiceError):
    """Raised when the Authorization header is longer than any client JWT we accept."""

    status = 431
    code = "request-header-fields-too-large"


class StoreUnavailable(ServiceError):
    """Raised when the store is unreachable; the client may retry."""

    status = 503
    code = "store-unavailable"


class ReplayStoreUnavailable(ServiceError):
    """Raised when a token's `jti` cannot be checked against the replay store; retry later."""

    status = 503
    code = "replay-store-unavailable"


class ConfigurationInvalid(ValueError):
    """Raised at start-up when the settings cannot make a safe service; says what to set."""


def register(app: Flask) -> None:
    """Install the handlers that turn every failure into a JSON response."""

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError):
        response = jsonify(error.body())
        response.status_code = error.status
        if error.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        elif isinstance(error, CredentialsMisplaced):
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_request"'
        if error.retry_after_s is not None:
            response.headers["Retry-After"] = str(error.retry_after_s)
        elif error.status == 503:
            response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "-")
        response = jsonify({"error": code, "message": error.description or error.name})
        response.status_code = error.code or 500
        for name, value in error.get_headers():  # Allow on 405 (RFC 9110), and the like
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error: %s", type(error).__name__)
        response = jsonify({"error": "internal-error", "message": "internal server error"})
        response.status_code = 500
        return response
