"""Record the hook requests the CDS Hooks Sandbox sends, into tests/interop/sandbox_shapes/.

Run by hand (``python -m tests.interop.record_sandbox_shapes``); the tests read the files.
It does what the sandbox does before a hook call (github:cds-hooks/sandbox, read at commit
3b7e255, src/retrieve-data-helpers/service-exchange.js): read this service's discovery
prefetch templates, fill ``{{context.patientId}}``, and fetch each key from the FHIR
server: an instance read with GET, a search with POST ``<Type>/_search`` (form-encoded),
then GET when that fails. Only the keys that came back go into ``prefetch``. The FHIR
server is the local one (tests/fhir_sandbox, demo patients loaded); its base URL in the
recorded data is replaced by the sandbox's R4 server, the ``fhirServer`` the requests name.

The request envelope (``hookInstance``, ``hook``, ``fhirServer``, ``context`` with
``patientId`` and the sandbox's default ``userId``; no ``fhirAuthorization`` for an open
server) and the draft orders (src/reducers/medication-reducers.js ``createFhirResource``)
are written here as the sandbox builds them; none of its code is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import requests

from cds_service.hooks.prefetch import render
from cds_service.hooks.services import ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW, build_services
from cds_service.knowledge import Knowledge
from cds_service.resources import shipped_dir
from tests.integration.fhir_sandbox import (
    FIXTURE_BUNDLES,
    load_bundles,
    start_sandbox,
    stop_sandbox,
)

SHAPES = Path(__file__).resolve().parent / "sandbox_shapes"
#: The sandbox's R4 server (its default is the DSTU2 one, .../v/r2/fhir).
SANDBOX_FHIR = "https://launch.smarthealthit.org/v/r4/fhir"
#: The sandbox's user when none signed in (src/reducers/patient-reducers.js).
SANDBOX_USER = "Practitioner/COREPRACTITIONER1"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
FREQUENCY = {"daily": 1, "bid": 2, "tid": 3, "qid": 4}
#: Placeholders the tests replace (a fresh hookInstance per call, the sandbox's date).
HOOK_INSTANCE = "{{hookInstance}}"
TODAY = "{{today}}"


def sandbox_draft(
    patient_id: str,
    rxcui: str,
    name: str,
    number: int,
    frequency: str,
    supply_days: int | None,
) -> dict[str, Any]:
    """A draft MedicationRequest as the sandbox's Rx views make it for an R4 server: id
    ``request-123``, a ``{pill}`` dose with no unit, and, once a supply duration is given,
    ``intent`` and a ``category`` that is one CodeableConcept, not a list."""
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "request-123",
        "status": "draft",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": TODAY,
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {"frequency": FREQUENCY[frequency], "period": 1, "periodUnit": "d"}
                },
                "doseAndRate": [
                    {"doseQuantity": {"value": number, "system": UCUM, "code": "{pill}"}}
                ],
            }
        ],
    }
    if supply_days is not None:
        resource["dispenseRequest"] = {
            "expectedSupplyDuration": {
                "value": supply_days,
                "unit": "days",
                "system": UCUM,
                "code": "d",
            }
        }
        resource["intent"] = "order"
        resource["category"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                    "code": "community",
                }
            ]
        }
    resource["medicationCodeableConcept"] = {
        "text": name,
        "coding": [{"display": name, "system": RXNORM, "code": rxcui}],
    }
    return resource


#: file name -> (service, patient, draft order or None).
CASES: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "patient-view.rls-low-ferritin.json": (PATIENT_VIEW, "rls-low-ferritin", None),
    "patient-view.rls-gabapentin-ckd.json": (PATIENT_VIEW, "rls-gabapentin-ckd", None),
    "order-select.rls-low-ferritin.metoclopramide.json": (
        ORDER_SELECT,
        "rls-low-ferritin",
        sandbox_draft(
            "rls-low-ferritin", "311666", "Metoclopramide 10 MG Oral Tablet", 1, "tid", None
        ),
    ),
    "order-sign.rls-gabapentin-ckd.gabapentin.json": (
        ORDER_SIGN,
        "rls-gabapentin-ckd",
        sandbox_draft(
            "rls-gabapentin-ckd", "310433", "gabapentin 600 MG Oral Tablet", 1, "tid", 30
        ),
    ),
}


def fetch(session: requests.Session, base: str, query: str) -> Any | None:
    """One prefetch key the sandbox's way; None when the server gave nothing."""
    headers = {"Accept": "application/json+fhir"}
    path, _, search = query.partition("?")
    if not search:
        response = session.get(f"{base}/{path}", headers=headers, timeout=30)
        return response.json() if response.ok else None
    form = dict(parse_qsl(search))
    response = session.post(f"{base}/{path}/_search", data=form, headers=headers, timeout=30)
    if not response.ok:
        response = session.get(f"{base}/{query}", headers=headers, timeout=30)
    return response.json() if response.ok else None


def request_for(
    session: requests.Session, base: str, service_id: str, patient: str, draft: Any
) -> dict[str, Any]:
    service = build_services(Knowledge.load(shipped_dir("cards")).value_sets)[service_id]
    context: dict[str, Any] = {"patientId": patient, "userId": SANDBOX_USER}
    if draft is not None:
        if service.hook == "order-select":
            context["selections"] = [f"MedicationRequest/{draft['id']}"]
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": draft}]}
    prefetch = {}
    for key, template in service.prefetch.items():
        value = fetch(session, base, render(template, {"patientId": patient}))
        if value:
            prefetch[key] = value
    body = {
        "hookInstance": HOOK_INSTANCE,
        "hook": service.hook,
        "fhirServer": SANDBOX_FHIR,
        "context": context,
    }
    if prefetch:
        body["prefetch"] = prefetch
    return json.loads(json.dumps(body).replace(base, SANDBOX_FHIR))


def main() -> None:
    process, base = start_sandbox()
    try:
        load_bundles(base, FIXTURE_BUNDLES)
        with requests.Session() as session:
            for name, (service_id, patient, draft) in CASES.items():
                body = request_for(session, base, service_id, patient, draft)
                text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
                (SHAPES / name).write_text(text, "utf-8")
                print(f"wrote {name}: prefetch keys {sorted(body.get('prefetch', {}))}")
    finally:
        stop_sandbox(process)


if __name__ == "__main__":
    main()
