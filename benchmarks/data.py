"""Deterministic hook requests for the benchmarks: a large generated record and a small demo one.

The large record is shaped like an EHR's answer to the service's prefetch templates: 300 lab
Observations (iron studies, kidney labs, weights, a few labs no rule reads), 50
MedicationRequests (RxNorm-coded, with dosage instructions) and 50 Conditions (SNOMED CT and
ICD-10-CM), each with the displays, categories and metadata a real server sends.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cds_service.resources import shipped_dir

PATIENT_ID = "bench-patient"
SEED = 20261128
#: The large record's lab dates end here; hooks evaluate at NOW (the in-process ones).
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"

#: (LOINC code, display, unit, low, high): what the labs query returns, plus a few others.
LABS = [
    ("2276-4", "Ferritin [Mass/volume] in Serum or Plasma", "ng/mL", 15, 300),
    ("2502-3", "Iron saturation [Mass Fraction] in Serum or Plasma", "%", 8, 45),
    ("2498-4", "Iron [Mass/volume] in Serum or Plasma", "ug/dL", 30, 180),
    ("2500-0", "Iron binding capacity [Mass/volume] in Serum or Plasma", "ug/dL", 250, 450),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 2.4),
    ("98979-8", "Glomerular filtration rate/1.73 sq M.predicted (CKD-EPI 2021)",
     "mL/min/{1.73_m2}", 25, 110),
    ("29463-7", "Body weight", "kg", 55, 95),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 10, 16),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 160),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 132, 146),
]  # fmt: skip
#: (RxNorm code, display, strength mg or None): a mix of drugs the rules know and do not.
DRUGS = [
    ("310431", "gabapentin 300 MG Oral Capsule", 300),
    ("1049221", "acetaminophen 325 MG Oral Tablet", 325),
    ("314076", "lisinopril 10 MG Oral Tablet", 10),
    ("860975", "metformin hydrochloride 500 MG Oral Tablet", 500),
    ("312940", "sertraline 50 MG Oral Tablet", 50),
    ("197591", "diazepam 5 MG Oral Tablet", 5),
    ("1000126", "diphenhydramine hydrochloride 25 MG Oral Capsule", 25),
    ("617314", "atorvastatin 10 MG Oral Tablet", 10),
    ("198211", "simvastatin 40 MG Oral Tablet", 40),
    ("866924", "metoprolol tartrate 25 MG Oral Tablet", 25),
]
#: (system, code, display) of problems: RLS first, then causes and unrelated problems.
PROBLEMS = [
    (SNOMED, "32914008", "Restless legs syndrome"),
    (ICD10CM, "N18.32", "Chronic kidney disease, stage 3b"),
    (ICD10CM, "E11.9", "Type 2 diabetes mellitus without complications"),
    (ICD10CM, "I10", "Essential (primary) hypertension"),
    (SNOMED, "38341003", "Hypertensive disorder"),
    (ICD10CM, "E78.5", "Hyperlipidemia, unspecified"),
    (ICD10CM, "M54.16", "Radiculopathy, lumbar region"),
    (SNOMED, "44054006", "Diabetes mellitus type 2"),
    (ICD10CM, "J45.909", "Unspecified asthma, uncomplicated"),
    (ICD10CM, "K21.9", "Gastro-esophageal reflux disease without esophagitis"),
]
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def _searchset(resources: list[dict[str, Any]], base: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def _meta(rng: random.Random) -> dict[str, Any]:
    return {"versionId": str(rng.randint(1, 4)), "lastUpdated": "2026-11-20T09:14:03.118Z"}


def observation(rng: random.Random, index: int) -> dict[str, Any]:
    code, display, unit, low, high = LABS[index % len(LABS)]
    when = NOW - timedelta(days=3 + index * 2, hours=rng.randint(0, 12))
    return {
        "resourceType": "Observation",
        "id": f"obs-{index:04d}",
        "meta": _meta(rng),
        "status": "final",
        "category": [
            {"coding": [{"system": CATEGORY, "code": "laboratory", "display": "Laboratory"}]}
        ],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": when.isoformat(timespec="seconds"),
        "issued": (when + timedelta(hours=4)).isoformat(timespec="milliseconds"),
        "valueQuantity": {
            "value": round(rng.uniform(low, high), 1),
            "unit": unit,
            "system": UCUM,
            "code": unit,
        },
    }


def medication_request(rng: random.Random, index: int) -> dict[str, Any]:
    code, display, strength = DRUGS[index % len(DRUGS)]
    per_day = rng.choice([1, 2, 3])
    return {
        "resourceType": "MedicationRequest",
        "id": f"medrx-{index:04d}",
        "meta": _meta(rng),
        "status": "active" if index % 4 else "completed",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display}],
            "text": display,
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": (NOW - timedelta(days=30 + index * 11)).date().isoformat(),
        "requester": {"reference": "Practitioner/bench-prescriber", "display": "Dr. Bench"},
        "dosageInstruction": [
            {
                "sequence": 1,
                "text": f"{strength} mg by mouth {per_day} times daily",
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral"}]},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": strength,
                            "unit": "mg",
                            "system": UCUM,
                            "code": "mg",
                        }
                    }
                ],
            }
        ],
    }


def condition(rng: random.Random, index: int) -> dict[str, Any]:
    system, code, display = PROBLEMS[index % len(PROBLEMS)]
    status = "resolved" if index % 5 == 4 else "active"
    return {
        "resourceType": "Condition",
        "id": f"cond-{index:04d}",
        "meta": _meta(rng),
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "onsetDateTime": (NOW - timedelta(days=200 + index * 37)).date().isoformat(),
        "recordedDate": (NOW - timedelta(days=190 + index * 37)).date().isoformat(),
    }


def _is_weight(observation: dict[str, Any]) -> bool:
    return observation["code"]["coding"][0]["code"] == "29463-7"


def large_prefetch(
    observations: int = 300, medication_requests: int = 50, conditions: int = 50
) -> dict[str, Any]:
    """The large record as a patient-view prefetch (same input, same output, every run)."""
    rng = random.Random(SEED)
    base = "https://ehr.example.org/fhir"
    labs = [observation(rng, i) for i in range(observations)]
    return {
        "patient": {
            "resourceType": "Patient",
            "id": PATIENT_ID,
            "name": [{"use": "official", "family": "Bench", "given": ["Mark"]}],
            "gender": "female",
            "birthDate": "1958-04-12",
        },
        "conditions": _searchset([condition(rng, i) for i in range(conditions)], base),
        "labs": _searchset([o for o in labs if o["code"]["coding"][0]["code"] != "29463-7"], base),
        "weight": _searchset(
            [o for o in labs if o["code"]["coding"][0]["code"] == "29463-7"], base
        ),
        "medicationRequests": _searchset(
            [medication_request(rng, i) for i in range(medication_requests)], base
        ),
        "medicationStatements": _searchset([], base),
        "completedMedicationRequests": _searchset([], base),
        "medicationAdministrations": _searchset([], base),
        "serviceRequests": _searchset([], base),
        "procedures": _searchset([], base),
    }


def hook_request(prefetch: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
    """A patient-view request for the benchmark patient (a fixed hookInstance)."""
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.UUID(int=SEED)),
        "context": {"userId": "Practitioner/bench", "patientId": PATIENT_ID},
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body | fields


def large_body() -> bytes:
    """The large request as the bytes an EHR sends (compact JSON)."""
    return json.dumps(hook_request(large_prefetch()), separators=(",", ":")).encode()


def small_body() -> bytes:
    """A demo patient's request (low ferritin, a dozen resources) as compact JSON bytes."""
    path = shipped_dir("fhir_fixtures") / "requests" / "patient-view-rls-low-ferritin.json"
    return json.dumps(json.loads(path.read_text("utf-8")), separators=(",", ":")).encode()
