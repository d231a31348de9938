"""What the demo page offers: the demo patients, the example drafts and a few medications.

Everything is read from the ``fhir_fixtures/`` shipped with the package. A name chosen on
the page is looked up in these lists, never used as a path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cds_service.hooks.services import ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW
from cds_service.resources import shipped_dir

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
#: The hooks the page can call, and the service of each.
HOOKS = {"patient-view": PATIENT_VIEW, "order-select": ORDER_SELECT, "order-sign": ORDER_SIGN}
DEFAULT_PATIENT = "rls-low-ferritin"
EXAMPLE = "example:"
MEDICATION = "medication:"


class ChoiceInvalid(ValueError):
    """Raised when the page asks for a patient, draft or hook the demo does not have."""


@dataclass(frozen=True)
class DraftMedication:
    """A medication the page can turn into a draft MedicationRequest for any patient."""

    label: str
    text: str
    dosage: dict[str, Any]
    rxnorm: tuple[str, str] | None = None  # (code, display)


def _daily(text: str, times: int, count: int = 1, unit: str = "tablet") -> dict[str, Any]:
    return {
        "text": text,
        "timing": {"repeat": {"frequency": times, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [
            {
                "doseQuantity": {
                    "value": count,
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": f"{{{unit}}}",
                }
            }
        ],
    }


MEDICATIONS: dict[str, DraftMedication] = {
    "diphenhydramine": DraftMedication(
        "Diphenhydramine 25 mg at bedtime",
        "Diphenhydramine 25 mg capsule",
        {"text": "25 mg by mouth at bedtime as needed for sleep"},
    ),
    "metoclopramide": DraftMedication(
        "Metoclopramide 10 mg as needed",
        "Metoclopramide 10 mg tablet",
        {"text": "10 mg by mouth up to three times daily as needed for nausea"},
        ("311666", "Metoclopramide 10 MG Oral Tablet"),
    ),
    "sertraline": DraftMedication(
        "Sertraline 50 mg daily",
        "Sertraline 50 mg tablet",
        _daily("50 mg by mouth once daily", 1),
    ),
    "quetiapine": DraftMedication(
        "Quetiapine 25 mg at bedtime",
        "Quetiapine 25 mg tablet",
        _daily("25 mg by mouth at bedtime", 1),
    ),
    "pramipexole": DraftMedication(
        "Pramipexole 0.25 mg at bedtime",
        "Pramipexole 0.25 mg tablet",
        _daily("0.25 mg by mouth at bedtime", 1),
        ("859040", "Pramipexole dihydrochloride 0.25 MG Oral Tablet"),
    ),
    "gabapentin": DraftMedication(
        "Gabapentin 600 mg three times daily",
        "Gabapentin 600 mg tablet",
        _daily("600 mg by mouth three times daily", 3),
        ("310433", "gabapentin 600 MG Oral Tablet"),
    ),
    "pregabalin": DraftMedication(
        "Pregabalin 150 mg three times daily",
        "Pregabalin 150 mg capsule",
        _daily("150 mg by mouth three times daily", 3, unit="capsule"),
        ("607020", "pregabalin 150 MG Oral Capsule [Lyrica]"),
    ),
    "loratadine": DraftMedication(
        "Loratadine 10 mg daily (no card expected)",
        "Loratadine 10 mg tablet",
        _daily("10 mg by mouth once daily", 1),
    ),
}


@dataclass(frozen=True)
class Choice:
    """What the page's form asked for."""

    patient: str = DEFAULT_PATIENT
    bundle: str = ""
    hook: str = "patient-view"
    draft: str = ""
    asked: bool = field(default=False, compare=False)

    @classmethod
    def from_form(cls, values: Any) -> Choice:
        """The choice from the form (or query) values; nothing asked when both are empty."""
        patient = values.get("patient") or DEFAULT_PATIENT
        bundle = values.get("bundle") or ""
        return cls(
            patient=patient,
            bundle=bundle,
            hook=values.get("hook") or "patient-view",
            draft=values.get("draft") or "",
            asked="patient" in values or bool(bundle.strip()),
        )


def _fixtures() -> Path:
    return shipped_dir("fhir_fixtures")


def demo_patients() -> list[str]:
    """The demo patients' names (their bundle file names without ``.json``)."""
    return sorted(path.stem for path in (_fixtures() / "patients").glob("*.json"))


def patient_descriptions() -> dict[str, str]:
    """One line per demo patient saying what its record holds (``descriptions.json``, kept
    beside the bundles it describes); a patient without one gets an empty line."""
    described = json.loads((_fixtures() / "descriptions.json").read_text("utf-8"))["patients"]
    return {name: str(described.get(name, "")) for name in demo_patients()}


def example_drafts() -> list[str]:
    """The example draft-order bundles (``<patient>.<what>``)."""
    return sorted(path.stem for path in (_fixtures() / "drafts").glob("*.json"))


def load_patient(name: str) -> dict[str, Any]:
    if name not in demo_patients():
        raise ChoiceInvalid("there is no such demo patient")
    return json.loads((_fixtures() / "patients" / f"{name}.json").read_text("utf-8"))


def draft_orders(choice: str, patient_id: str, today: date) -> dict[str, Any]:
    """The draft-orders Bundle the choice names, its orders made out to `patient_id`."""
    if choice.startswith(EXAMPLE) and choice.removeprefix(EXAMPLE) in example_drafts():
        path = _fixtures() / "drafts" / f"{choice.removeprefix(EXAMPLE)}.json"
        bundle = json.loads(path.read_text("utf-8"))
        for entry in bundle.get("entry", []):
            if entry.get("resource", {}).get("resourceType") == "MedicationRequest":
                entry["resource"]["subject"] = {"reference": f"Patient/{patient_id}"}
        return bundle
    if choice.startswith(MEDICATION) and choice.removeprefix(MEDICATION) in MEDICATIONS:
        key = choice.removeprefix(MEDICATION)
        return draft_bundle(key, MEDICATIONS[key], patient_id, today)
    raise ChoiceInvalid("choose a draft order for the order hooks")


def draft_bundle(
    key: str, medication: DraftMedication, patient_id: str, today: date
) -> dict[str, Any]:
    """A Bundle holding one draft MedicationRequest of `medication` for the patient."""
    code: dict[str, Any] = {"text": medication.text}
    if medication.rxnorm:
        code["coding"] = [
            {"system": RXNORM, "code": medication.rxnorm[0], "display": medication.rxnorm[1]}
        ]
    order = {
        "resourceType": "MedicationRequest",
        "id": f"draft-{key}",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": code,
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": today.isoformat(),
        "dosageInstruction": [medication.dosage],
    }
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"MedicationRequest/{order['id']}", "resource": order}],
    }


def patient_summary(resources: list[dict[str, Any]], patient_id: str) -> dict[str, str]:
    """Name, gender and birth date of the patient, as text (escaped by the template)."""
    patient = next(
        (r for r in resources if r["resourceType"] == "Patient" and r.get("id") == patient_id),
        {},
    )
    names = patient.get("name") or [{}]
    name = names[0] if isinstance(names[0], dict) else {}
    given = " ".join(str(part) for part in name.get("given") or [])
    text = name.get("text") or " ".join(p for p in (given, str(name.get("family") or "")) if p)
    return {
        "id": patient_id,
        "name": str(text or "(no name)"),
        "gender": str(patient.get("gender") or "unknown"),
        "birthDate": str(patient.get("birthDate") or "unknown"),
    }
