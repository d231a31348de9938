"""Errors the HTTP boundary answers with, and the one place they become responses.

    ServiceError
    ├── RequestInvalid         400: not JSON, wrong content type, fields missing, wrong hook
    ├── AuthenticationFailed   401: no or unacceptable credentials
    ├── UnknownService         404: no service with that id
    ├── PrefetchUnavailable    412: data the rules need is missing and cannot be fetched
    ├── StoreUnavailable       503: the database cannot be reached
    └── ReplayStoreUnavailable 503: the JWT replay store cannot be asked (fail closed)

Bodies never echo request content: it may hold patient data or tokens.
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


class AuthenticationFailed(ServiceError):
    """Raised when the caller is not an authenticated, trusted CDS client."""

    status = 401
    code = "unauthorized"


class UnknownService(ServiceError):
    """Raised when the URL names a service this deployment does not offer."""

    status = 404
    code = "unknown-service"


class PrefetchUnavailable(ServiceError):
    """Raised when prefetch data the rules need is missing and cannot be fetched (spec 412)."""

    status = 412
    code = "prefetch-unavailable"


class StoreUnavailable(ServiceError):
    """Raised when the store is unreachable; the client may retry."""

    status = 503
    code = "store-unavailable"


class ReplayStoreUnavailable(ServiceError):
    """Raised when a token's `jti` cannot be checked against the replay store; retry later."""

    status = 503
    code = "replay-store-unavailable"


def register(app: Flask) -> None:
    """Install the handlers that turn every failure into a JSON response."""

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError):
        response = jsonify(error.body())
        response.status_code = error.status
        if error.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        elif error.status == 503:
            response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "-")
        response = jsonify({"error": code, "message": error.description or error.name})
        response.status_code = error.code or 500
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error: %s", type(error).__name__)
        response = jsonify({"error": "internal-error", "message": "internal server error"})
        response.status_code = 500
        return response
