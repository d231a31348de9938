"""Prefetch templates: which keys the EHR left for us to fetch, and the URLs that fetch them.

Spec semantics (Prefetch Template): a key that is absent, or holds an OperationOutcome, was
not satisfied and is fetched with the service's own template; a key that is ``null`` means
the EHR has no data and is not fetched again; an empty searchset is no data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from cds_service.clinical.reader import Prefetched

TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")

#: userId prefix -> the user token it fills (CDS Hooks 2.0, Prefetch tokens).
USER_TOKENS = {
    "Practitioner": "userPractitionerId",
    "PractitionerRole": "userPractitionerRoleId",
    "Patient": "userPatientId",
    "RelatedPerson": "userRelatedPersonId",
}


class TemplateError(ValueError):
    """Raised when a template names a token the request cannot fill."""


def token_values(context: Mapping[str, Any]) -> dict[str, str]:
    """Every token value a request offers: root-level primitive context fields and user ids."""
    values = {
        f"context.{name}": str(value)
        for name, value in context.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
    }
    user = context.get("userId")
    if isinstance(user, str) and "/" in user:
        kind, _, user_id = user.partition("/")
        if kind in USER_TOKENS and user_id:
            values[USER_TOKENS[kind]] = user_id
    return values


def render(template: str, context: Mapping[str, Any]) -> str:
    """The template with its tokens filled in (URL-escaped), or TemplateError."""
    values = token_values(context)

    def fill(match: re.Match[str]) -> str:
        token = match.group(1)
        if token not in values:
            raise TemplateError(f"the request has no value for {{{{{token}}}}}")
        return quote(values[token], safe="")

    return TOKEN.sub(fill, template)


def unsatisfied(templates: Mapping[str, str], prefetch: Mapping[str, Any] | None) -> list[str]:
    """Keys the client did not satisfy: absent, or an OperationOutcome instead of data."""
    prefetch = prefetch or {}
    return [key for key in templates if key not in prefetch or _is_outcome(prefetch[key])]


def resource_type(template: str) -> str:
    """The FHIR resource type a template reads or searches."""
    return template.split("?", 1)[0].split("/", 1)[0]


def _is_outcome(value: Any) -> bool:
    if isinstance(value, Prefetched):
        return value.resource_type == "OperationOutcome"
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"
