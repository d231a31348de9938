"""The service over a real socket against a real FHIR server, the way an EHR uses it.

Each call sends no (or partial) prefetch with fhirServer pointing at the Medplum sandbox
loaded with fhir_fixtures/ (or at RLS_CDS_TEST_FHIR_BASE), so every query, page and
reference is served by a FHIR server, not a mock.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from cds_service.app import create_app
from cds_service.cli import main
from cds_service.settings import Settings
from tests import builders as b
from tests.builders import strip_uuids
from tests.fixture_requests import PATIENTS, REQUESTS
from tests.integration.fhir_sandbox import load_bundles, start_sandbox, stop_sandbox
from tests.live import serving

pytestmark = pytest.mark.slow
HOOK = "/cds-services/rls-secondary-causes"
NOW = "2026-11-28T12:00:00Z"
FHIR_JSON = "application/fhir+json"


@contextmanager
def running_service(**settings: object) -> Iterator[str]:
    """The app on a free loopback port in a thread; yields its base URL."""
    config = {"demo": True, "database_url": "sqlite://", "log_level": "WARNING"} | settings
    app = create_app(Settings(**config), clock=lambda: b.NOW)
    with serving(app) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def service(fhir_server) -> Iterator[str]:
    with running_service(fhir_server_allowlist=fhir_server.base_url) as base:
        yield base


def hook_call(service: str, fhir_base: str, patient_id: str, prefetch=None, **extra):
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": fhir_base,
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
        **extra,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return requests.post(f"{service}{HOOK}", json=body, timeout=30)


def topics(response) -> list[str]:
    return [card["source"]["topic"]["code"] for card in response.json()["cards"]]


def post_transaction(fhir_base: str, resources: list[dict]) -> None:
    """PUT `resources` in transactions of at most 50 (the sandbox's limit)."""
    for start in range(0, len(resources), 50):
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
                for r in resources[start : start + 50]
            ],
        }
        headers = {"Content-Type": FHIR_JSON}
        response = requests.post(fhir_base, data=json.dumps(bundle), headers=headers, timeout=60)
        assert response.status_code == 200, response.text[:500]


@pytest.mark.parametrize("bundle", sorted(PATIENTS.glob("*.json")), ids=lambda p: p.stem)
def test_no_prefetch_gives_the_same_cards_as_evaluate(capsys, service, fhir_server, bundle):
    code = main(["evaluate", "--hook", "patient-view", "--bundle", str(bundle), "--now", NOW])
    assert code == 0
    expected = json.loads(capsys.readouterr().out)
    response = hook_call(service, fhir_server.base_url, bundle.stem)
    assert response.status_code == 200
    assert strip_uuids(response.json()) == strip_uuids(expected)


def test_partial_null_and_operation_outcome_keys(service, fhir_server):
    prefetch = json.loads((REQUESTS / "patient-view-rls-low-ferritin.json").read_text())["prefetch"]
    del prefetch["labs"]  # absent: fetched
    prefetch["conditions"] = {"resourceType": "OperationOutcome", "issue": []}  # fetched
    prefetch["medicationStatements"] = None  # no data, not fetched
    response = hook_call(service, fhir_server.base_url, "rls-low-ferritin", prefetch)
    assert response.status_code == 200
    assert topics(response) == ["iron-below-target"]


def test_more_than_one_page_of_observations_is_followed():
    """150 newer creatinines and one low ferritin: the ferritin is on page 2.

    Own sandbox and a long deadline: Medplum's in-memory search takes seconds over 150
    Observations, which would slow every other test sharing the server.
    """
    who = "paging-patient"
    creatinines = [
        {**b.observation(b.CREATININE, 1.0, "mg/dL", when=f"2026-0{1 + i % 9}-01T08:00:00Z",
                         patient_id=who), "id": f"{who}-cr-{i}"}
        for i in range(150)
    ]  # fmt: skip
    ferritin = {
        **b.observation(b.FERRITIN, 30, "ng/mL", when="2025-12-01T08:00:00Z", patient_id=who),
        "id": f"{who}-ferritin",
    }
    condition = {**b.rls(patient_id=who), "id": f"{who}-rls"}
    process, fhir = start_sandbox()
    try:
        post_transaction(fhir, [b.patient(who), condition, ferritin, *creatinines])
        with running_service(fhir_server_allowlist=fhir, hook_deadline_s=20) as service:
            response = hook_call(service, fhir, who)
    finally:
        stop_sandbox(process)
    assert topics(response) == ["iron-below-target"]
    assert "30 ng/mL" in response.json()["cards"][0]["summary"]


def test_contained_and_referenced_medications_are_read(fhir_server):
    """Both orders resolve to a named medication: contained, and read by _id from the server."""
    who = "meds-patient"
    contained = {
        **b.medication_request(patient_id=who),
        "id": f"{who}-mr-contained",
        "contained": [b.medication("med1", text="Hydroxyzine 25 mg")],
        "medicationReference": {"reference": "#med1"},
    }
    contained.pop("medicationCodeableConcept")
    referenced = {
        **b.medication_request(patient_id=who),
        "id": f"{who}-mr-referenced",
        "medicationReference": {"reference": f"Medication/{who}-med"},
    }
    referenced.pop("medicationCodeableConcept")
    medication = b.medication(f"{who}-med", text="Diphenhydramine 50 mg")
    condition = {**b.rls(patient_id=who), "id": f"{who}-rls"}
    post_transaction(
        fhir_server.base_url, [b.patient(who), condition, contained, referenced, medication]
    )
    settings = Settings(
        demo=True, database_url="sqlite://", fhir_server_allowlist=fhir_server.base_url
    )
    evaluator = create_app(settings, clock=lambda: b.NOW).extensions["rls_cds"].evaluator
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": fhir_server.base_url,
        "context": {"userId": "Practitioner/example", "patientId": who},
    }
    outcome = evaluator.evaluate("rls-secondary-causes", body)
    assert outcome.report.read["MedicationRequest"] == 2
    assert outcome.report.read["Medication"] == 1
    assert "MedicationRequest:medication-unresolved" not in outcome.report.ignored
    cards = outcome.response["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == [
        "sedating-antihistamine",
        "iron-studies-due",
        "renal-function-due",
    ]
    assert "Hydroxyzine 25 mg and Diphenhydramine 50 mg" in cards[0]["detail"]
    stop = next(s for s in cards[0]["suggestions"] if s["label"].startswith("Stop it without"))
    assert sorted(a["resourceId"] for a in stop["actions"]) == [
        f"MedicationRequest/{who}-mr-contained",
        f"MedicationRequest/{who}-mr-referenced",
    ]


def test_fhir_server_down_is_412(fhir_server):
    closed = "http://127.0.0.1:9/fhir"  # discard port: nothing listens
    with running_service() as service:
        response = hook_call(service, closed, "rls-low-ferritin")
    assert response.status_code == 412
    assert {d["prefetch"] for d in response.json()["details"]} >= {"patient", "labs"}


@pytest.fixture(scope="module")
def guarded_fhir() -> Iterator[str]:
    """A second sandbox that wants a bearer token, loaded with the demo patients."""
    process, base = start_sandbox({"SANDBOX_REQUIRE_TOKEN": "right-token"})
    try:
        load_bundles(base, sorted(PATIENTS.glob("*.json")), {"Authorization": "Bearer right-token"})
        yield base
    finally:
        stop_sandbox(process)


def authorization(token: str) -> dict:
    return {"access_token": token, "token_type": "Bearer", "expires_in": 300,
            "scope": "patient/*.read", "subject": "rls-cds"}  # fmt: skip


def test_fhir_401_is_412_and_the_right_token_works(guarded_fhir):
    with running_service(fhir_server_allowlist=guarded_fhir) as service:
        refused = hook_call(
            service, guarded_fhir, "rls-low-ferritin", fhirAuthorization=authorization("wrong")
        )
        accepted = hook_call(
            service,
            guarded_fhir,
            "rls-low-ferritin",
            fhirAuthorization=authorization("right-token"),
        )
    assert refused.status_code == 412
    assert "wrong" not in refused.text
    assert accepted.status_code == 200 and topics(accepted) == ["iron-below-target"]


def test_slow_fhir_server_answers_within_the_deadline(tmp_path):
    process, slow = start_sandbox({"SANDBOX_DELAY_MS": "3000"})
    try:
        with running_service(fhir_server_allowlist=slow, hook_deadline_s=1.0) as service:
            started = time.monotonic()
            response = hook_call(service, slow, "rls-low-ferritin")
            elapsed = time.monotonic() - started
    finally:
        stop_sandbox(process)
    assert response.status_code == 200
    assert response.json() == {"cards": []}  # conditions unread: no gate, no guess
    assert elapsed < 1.0 + 0.5


def test_request_files_still_work_with_no_fhir_server(service):
    """The shipped example requests carry full prefetch and need no FHIR server."""
    body = json.loads(Path(REQUESTS / "patient-view-rls-ckd.json").read_text())
    response = requests.post(f"{service}{HOOK}", json=body, timeout=30)
    assert topics(response) == ["iron-below-target", "kidney-disease"]


def test_check_prints_cards_and_a_report_of_each_query(capsys, fhir_server):
    code = main(
        ["check", "--fhir-server", fhir_server.base_url, "--patient", "rls-low-ferritin",
         "--token", "secret-check-token", "--now", NOW]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0
    assert topics_of(json.loads(out)) == ["iron-below-target"]
    assert "/Patient/rls-low-ferritin" in err and "/Condition?patient=rls-low-ferritin" in err
    # The stopped gabapentin order arrives with the past-medication query (iron given lately).
    assert "resources read: Condition 1, MedicationRequest 1, Observation 5, Patient 1" in err
    assert "/MedicationAdministration?patient=rls-low-ferritin" in err
    assert "warning  iron-below-target" in err
    assert "secret-check-token" not in out + err


def test_check_against_a_dead_server_exits_1_with_the_table_and_a_hint(capsys):
    """Issue 19: the per-query table is kept on a 412, with what to check; then one line."""
    code = main(["check", "--fhir-server", "http://127.0.0.1:9/fhir", "--patient", "x"])
    _, err = capsys.readouterr()
    assert code == 1
    lines = err.rstrip().splitlines()
    assert lines[0] == "FHIR queries:" and "no answer" in lines[1]
    assert "  not read: labs (could not connect)" in lines
    assert "hint: connection refused or no such host: check the --fhir-server URL" in lines
    assert lines[-1].startswith("rls-cds: 412") and "labs" in lines[-1]


def topics_of(response: dict) -> list[str]:
    return [card["source"]["topic"]["code"] for card in response["cards"]]
