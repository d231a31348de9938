"""FHIR resources that card suggestions carry, built and validated with fhir.resources (R4B).

Suggestions are orders a clinician accepts in one click, so every resource must be valid
FHIR R4: each is built as a ``fhir.resources`` model (which validates it) and serialised
from that model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cds_service.knowledge import ActionDef

if TYPE_CHECKING:
    from fhir.resources.R4B.medicationrequest import MedicationRequest
    from fhir.resources.R4B.servicerequest import ServiceRequest


class SuggestionError(ValueError):
    """Raised when a suggestion definition does not make a valid FHIR resource."""


def load_models() -> tuple[type[MedicationRequest], type[ServiceRequest]]:
    """The two fhir.resources models, imported on first use (about 60 ms, which commands
    that build no card need not pay; the gunicorn master imports them for its workers)."""
    from fhir.resources.R4B.medicationrequest import MedicationRequest
    from fhir.resources.R4B.servicerequest import ServiceRequest

    return MedicationRequest, ServiceRequest


def build_resource(action: ActionDef, patient_id: str, now: datetime) -> dict[str, Any]:
    """The validated resource for one create action, for `patient_id`, authored `now`."""
    MedicationRequest, ServiceRequest = load_models()
    assert action.type == "create" and action.text is not None
    concept: dict[str, Any] = {"text": action.text}
    if action.coding:
        concept["coding"] = [c.model_dump() for c in action.coding]
    common = {
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": now.isoformat(timespec="seconds"),
    }
    try:
        if action.resource == "ServiceRequest":
            model: Any = ServiceRequest.model_validate(
                {
                    "resourceType": "ServiceRequest",
                    **common,
                    "code": concept,
                    **_optional("patientInstruction", action.patient_instruction),
                }
            )
        else:
            dosage: dict[str, Any] = {"text": action.dosage_text or action.text}
            if action.route:
                dosage["route"] = {"coding": [action.route.model_dump()]}
            model = MedicationRequest.model_validate(
                {
                    "resourceType": "MedicationRequest",
                    **common,
                    "medicationCodeableConcept": concept,
                    "dosageInstruction": [dosage],
                }
            )
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise SuggestionError(f"{action.resource} for {action.description!r}: {exc}") from exc
    return json.loads(model.model_dump_json(exclude_none=True))


def validated_update(resource: Mapping[str, Any]) -> dict[str, Any]:
    """An updated MedicationRequest, checked by fhir.resources; SuggestionError if invalid.

    The order comes from the EHR and only its dosage was changed by us, so an order that
    was invalid as received cannot be offered back as a one-click update.
    """
    MedicationRequest, _ = load_models()
    try:
        model = MedicationRequest.model_validate(dict(resource))
    except ValueError as exc:
        raise SuggestionError(f"updated MedicationRequest is not valid FHIR: {exc}") from exc
    return json.loads(model.model_dump_json(exclude_none=True))


def _optional(key: str, value: str | None) -> dict[str, str]:
    return {key: value} if value else {}
