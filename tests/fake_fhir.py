"""An EHR's FHIR server faked with `responses`, answering the service's queries from a record.

The same scenarios run against a real FHIR server in tests/integration/test_against_fhir_server.py.
"""

from __future__ import annotations

from tests import builders as b

FHIR = "https://ehr.example/fhir"
#: Every resource type the services' prefetch templates search.
SEARCHED = (
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "MedicationAdministration",
    "ServiceRequest",
    "Procedure",
)


def serve_record(fhir, *resources: dict, status: int = 200) -> None:
    """Answer every query the templates make from `resources`, like a FHIR server would."""
    by_type: dict[str, list[dict]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    fhir.get(f"{FHIR}/Patient/{b.PATIENT_ID}", json=b.patient(), status=status)
    for kind in SEARCHED:
        fhir.get(f"{FHIR}/{kind}", json=b.searchset(*by_type.get(kind, [])), status=status)
