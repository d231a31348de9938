"""Turn a FHIR Bundle holding one patient's record into a CDS Hooks request.

Each prefetch key gets what its template would return from a FHIR server that had stored the
bundle: the Patient for a read, a searchset of that resource type for a search (Medications
ride along as ``include`` entries so references resolve). Like a server after a transaction,
``urn:uuid`` references are rewritten to ``Type/id``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cds_service.hooks.prefetch import resource_type
from cds_service.hooks.services import ServiceDefinition

CLI_USER = "Practitioner/rls-cds-cli"


class BundleError(ValueError):
    """Raised when a file is not a Bundle with one patient's record."""


def patient_resources(bundle: Any) -> tuple[str, list[dict]]:
    """The patient id and the bundle's resources, references resolved to ``Type/id``."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BundleError("not a FHIR Bundle")
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    resources, aliases = [], {}
    for entry in entries:
        resource = entry.get("resource")
        if not isinstance(resource, dict) or "resourceType" not in resource:
            continue
        full_url = entry.get("fullUrl")
        if (
            not resource.get("id")
            and isinstance(full_url, str)
            and full_url.startswith("urn:uuid:")
        ):
            resource = {**resource, "id": full_url.removeprefix("urn:uuid:")}
        if isinstance(full_url, str) and resource.get("id"):
            aliases[full_url] = f"{resource['resourceType']}/{resource['id']}"
        resources.append(resource)
    patients = [r for r in resources if r["resourceType"] == "Patient" and r.get("id")]
    if not patients:
        raise BundleError("the bundle holds no Patient with an id")
    return patients[0]["id"], [_resolve(r, aliases) for r in resources]


def hook_request(
    service: ServiceDefinition,
    bundle: Any,
    draft_orders: Mapping[str, Any] | None = None,
    hook_instance: str | None = None,
) -> dict[str, Any]:
    """A complete CDS Hooks request for `service` with every prefetch key filled."""
    patient_id, resources = patient_resources(bundle)
    context = hook_context(service.hook, patient_id, draft_orders)
    return {
        "hook": service.hook,
        "hookInstance": hook_instance or str(uuid.uuid4()),
        "context": context,
        "prefetch": {
            key: _prefetch_value(template, resources, patient_id)
            for key, template in service.prefetch.items()
        },
    }


def hook_context(
    hook: str, patient_id: str, draft_orders: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The CLI's context for `hook`: at order-select every draft order is selected."""
    context: dict[str, Any] = {"userId": CLI_USER, "patientId": patient_id}
    if hook in ("order-select", "order-sign"):
        if draft_orders is None:
            raise BundleError(f"hook {hook} needs --draft-orders")
        context["draftOrders"] = draft_orders
        if hook == "order-select":
            context["selections"] = [
                f"{r['resourceType']}/{r['id']}"
                for r in (e.get("resource") or {} for e in draft_orders.get("entry") or [])
                if r.get("id")
            ]
    return context


def _prefetch_value(template: str, resources: list[dict], patient_id: str) -> dict | None:
    kind = resource_type(template)
    if "?" not in template:  # a read such as Patient/{{context.patientId}}
        return next(
            (r for r in resources if r["resourceType"] == kind and r["id"] == patient_id), None
        )
    codes = _search_tokens(template, "code")
    statuses = _search_tokens(template, "status")
    matches = [
        r
        for r in resources
        if r["resourceType"] == kind
        and (codes is None or _coded(r, codes))
        and (statuses is None or r.get("status") in statuses)
    ]
    entries = [{"resource": r, "search": {"mode": "match"}} for r in matches]
    if kind in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
        entries += [
            {"resource": r, "search": {"mode": "include"}}
            for r in resources
            if r["resourceType"] == "Medication"
        ]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(matches)}
    if entries:
        bundle["entry"] = entries
    return bundle


def _search_tokens(template: str, parameter: str) -> set[str] | None:
    """The comma-separated tokens of a template's search parameter (``code=`` gives
    ``system|code`` tokens, ``status=`` statuses), or None when it has none."""
    query = parse_qs(urlsplit(template).query)
    if parameter not in query:
        return None
    return {token for value in query[parameter] for token in value.split(",")}


def _coded(resource: dict, codes: set[str]) -> bool:
    """Whether a resource's code matches a ``code=`` search, as a FHIR server would."""
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    return any(
        f"{c.get('system')}|{c.get('code')}" in codes or c.get("code") in codes
        for c in codings or []
        if isinstance(c, dict)
    )


def _resolve(value: Any, aliases: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: aliases.get(v, v)
            if k == "reference" and isinstance(v, str)
            else _resolve(v, aliases)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve(item, aliases) for item in value]
    return value
