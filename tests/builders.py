"""One place that builds FHIR resources, prefetch and pictures for tests, with defaults.

A test spells out only what matters to it: ``observation("2276-4", 38, "ng/mL")``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cds_service.clinical.engine import Engine
from cds_service.clinical.findings import Finding
from cds_service.clinical.picture import PatientPicture, build_picture
from cds_service.clinical.rules.common import Params
from cds_service.knowledge import Knowledge
from cds_service.resources import shipped_dir

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PATIENT_ID = "p1"
KNOWLEDGE = Knowledge.load(shipped_dir("cards"))

FERRITIN = "2276-4"
TSAT = "2502-3"
IRON = "2498-4"
TIBC = "2500-0"
CREATININE = "2160-0"
CREATININE_UMOL = "14682-9"
EGFR = "98979-8"
WEIGHT = "29463-7"
WEIGHT_CODES = frozenset({"29463-7", "3141-9"})
EGFR_2021 = "98979-8"


def _id() -> str:
    return uuid.uuid4().hex[:16]


def patient(
    patient_id: str = PATIENT_ID, gender: str | None = "female", birth_date: str = "1968-04-12"
) -> dict:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": patient_id}
    if gender:
        resource["gender"] = gender
    if birth_date:
        resource["birthDate"] = birth_date
    return resource


def coding(system: str, code: str, display: str | None = None) -> dict:
    found = {"system": system, "code": code}
    if display:
        found["display"] = display
    return found


def condition(
    *codings: dict,
    text: str | None = None,
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    patient_id: str = PATIENT_ID,
    onset: str | None = None,
) -> dict:
    code: dict[str, Any] = {}
    if codings:
        code["coding"] = list(codings)
    if text:
        code["text"] = text
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": _id(),
        "code": code,
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if onset:
        resource["onsetDateTime"] = onset
    if clinical:
        resource["clinicalStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": clinical,
                }
            ]
        }
    if verification:
        resource["verificationStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": verification,
                }
            ]
        }
    return resource


def rls(**kwargs: Any) -> dict:
    """An active, confirmed RLS condition coded in SNOMED CT."""
    return condition(coding(SNOMED, "32914008", "Restless legs"), **kwargs)


def esrd() -> dict:
    return condition(coding(ICD10CM, "N18.6", "End stage renal disease"))


def observation(
    code: str,
    value: float | None,
    unit: str | None,
    when: str = "2026-10-15T08:00:00Z",
    status: str = "final",
    system: str = LOINC,
    comparator: str | None = None,
    patient_id: str = PATIENT_ID,
) -> dict:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": _id(),
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
    }
    if value is not None:
        quantity: dict[str, Any] = {"value": value}
        if unit:
            quantity |= {"unit": unit, "system": UCUM, "code": unit}
        if comparator:
            quantity["comparator"] = comparator
        resource["valueQuantity"] = quantity
    return resource


def kidney_ok(**kwargs: Any) -> dict:
    """A recent normal creatinine, so that `renal-function-due` stays silent."""
    return observation(CREATININE, 0.8, "mg/dL", **kwargs)


def medication_request(
    code: str | None = None,
    text: str | None = None,
    status: str = "active",
    patient_id: str = PATIENT_ID,
) -> dict:
    concept: dict[str, Any] = {}
    if code:
        concept["coding"] = [coding(RXNORM, code)]
    if text:
        concept["text"] = text
    return {
        "resourceType": "MedicationRequest",
        "id": _id(),
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": concept,
    }


def searchset(*resources: dict) -> dict:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
    }
    if resources:
        bundle["entry"] = [{"resource": r} for r in resources]
    return bundle


def prefetch(*resources: dict, with_patient: dict | None = None) -> dict:
    """A complete patient-view prefetch holding `resources`, split by type like a server."""
    by_key = {
        "conditions": "Condition",
        "labs": "Observation",
        "weight": "Observation",
        "medicationRequests": "MedicationRequest",
        "medicationStatements": "MedicationStatement",
        "completedMedicationRequests": "MedicationRequest",
        "medicationAdministrations": "MedicationAdministration",
        "serviceRequests": "ServiceRequest",
        "procedures": "Procedure",
    }
    result: dict[str, Any] = {"patient": with_patient or patient()}
    for key, kind in by_key.items():
        result[key] = searchset(*(r for r in resources if _belongs(key, kind, r)))
    return result


def _belongs(key: str, kind: str, resource: dict) -> bool:
    """Whether a server would answer the prefetch key's query with the resource."""
    if resource["resourceType"] != kind:
        return False
    if kind == "Observation":
        return (key == "weight") == _is_weight(resource)
    if key == "completedMedicationRequests":
        return resource.get("status") in ("completed", "stopped")
    return True


def _is_weight(resource: dict) -> bool:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and c.get("code") in WEIGHT_CODES for c in codings
    )


def picture(
    *resources: dict,
    now: datetime = NOW,
    unavailable: frozenset[str] = frozenset(),
    **patient_fields: Any,
) -> PatientPicture:
    """The picture the service would build from a prefetch of `resources`."""
    return build_picture(
        prefetch(*resources, with_patient=patient(**patient_fields)),
        patient_fields.get("patient_id", PATIENT_ID),
        now,
        KNOWLEDGE.value_sets,
        unavailable,
    )


ENGINE = Engine(KNOWLEDGE.thresholds, KNOWLEDGE.dosing, KNOWLEDGE.iron_catalogue)


def params(topic: str) -> Params:
    """A topic's rule parameters as the engine passes them."""
    return Params(KNOWLEDGE.thresholds[topic], KNOWLEDGE.thresholds, KNOWLEDGE.dosing)


def findings(*resources: dict, **kwargs: Any) -> dict[str, Finding]:
    """The engine's findings for an RLS patient with `resources`, by topic."""
    found = ENGINE.patient_view(picture(rls(), *resources, **kwargs))
    return {f.topic: f for f in found}


def hook_request(prefetch_value: dict | None = None, **overrides: Any) -> dict:
    """A valid patient-view request for PATIENT_ID; keyword arguments replace top-level keys."""
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": PATIENT_ID},
        "prefetch": prefetch_value if prefetch_value is not None else prefetch(rls()),
    }
    body.update(overrides)
    return body


def medication_statement(
    code: str | None = None,
    text: str | None = None,
    status: str = "active",
    end: str | None = None,
    patient_id: str = PATIENT_ID,
) -> dict:
    """A MedicationStatement; `end` sets effectivePeriod.end (a stopped course)."""
    resource = medication_request(code, text, status, patient_id)
    del resource["intent"]
    resource["resourceType"] = "MedicationStatement"
    if end:
        resource["effectivePeriod"] = {"start": "2026-01-01", "end": end}
    return resource


def medication(medication_id: str, text: str, code: str | None = None) -> dict:
    """A Medication resource, for medicationReference (contained or elsewhere in the prefetch)."""
    concept: dict[str, Any] = {"text": text}
    if code:
        concept["coding"] = [coding(RXNORM, code)]
    return {"resourceType": "Medication", "id": medication_id, "code": concept}


def strip_uuids(value: Any) -> Any:
    """A response without its per-call uuids, for comparing two calls."""
    if isinstance(value, dict):
        return {k: strip_uuids(v) for k, v in value.items() if k != "uuid"}
    if isinstance(value, list):
        return [strip_uuids(v) for v in value]
    return value


def service_request(
    code: str | None = None,
    text: str | None = None,
    status: str = "active",
    authored: str = "2026-11-01",
    system: str = LOINC,
    occurrence: str | None = None,
) -> dict:
    """A ServiceRequest for PATIENT_ID: an order on the record (pending, or done when
    `status` is completed and `occurrence` is given)."""
    concept: dict[str, Any] = {}
    if code:
        concept["coding"] = [coding(system, code)]
    if text:
        concept["text"] = text
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": _id(),
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": concept,
        "authoredOn": authored,
    }
    if occurrence:
        resource["occurrenceDateTime"] = occurrence
    return resource


def cards_by_topic(found: Mapping[str, Finding]) -> dict[str, dict]:
    """The cards the service renders for `found` (as b.findings returns), by topic."""
    from cds_service.cards import CardRenderer

    cards = CardRenderer(KNOWLEDGE).render(found.values(), PATIENT_ID, NOW)
    return {card["source"]["topic"]["code"]: card for card in cards}


def engine_and_rule(topic: str, check: Any) -> tuple[Any, Any]:
    """Two ways to run one topic's rule on an RLS patient with normal kidney labs: through
    the engine, and the rule function directly with the engine's parameters."""

    def via_engine(*resources: dict) -> list:
        found = findings(kidney_ok(), *resources).get(topic)
        return [found] if found else []

    def via_rule(*resources: dict) -> list:
        return check(picture(rls(), kidney_ok(), *resources), params(topic))

    return via_engine, via_rule
