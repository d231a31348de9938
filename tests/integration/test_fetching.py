"""Hooks with partial or no prefetch: the service fetches the rest from the EHR's FHIR server.

FHIR is faked with `responses`; the same scenarios run against a real FHIR server in
test_against_fhir_server.py.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from tests import builders as b
from tests.fake_fhir import FHIR, serve_record

TOKEN = "ehr-token-7f3c"
HOOK = "/cds-services/rls-secondary-causes"
AUTHORIZATION = {
    "access_token": TOKEN,
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "patient/*.read",
    "subject": "rls-cds",
}


@pytest.fixture
def client(fetching_client):
    return fetching_client


def call(client, prefetch: dict | None, **extra):
    body = b.hook_request(fhirServer=FHIR, fhirAuthorization=AUTHORIZATION, **extra)
    if prefetch is None:
        del body["prefetch"]
    else:
        body["prefetch"] = prefetch
    return client.post(HOOK, data=json.dumps(body), content_type="application/json")


def topics(response) -> list[str]:
    return [card["source"]["topic"]["code"] for card in response.get_json()["cards"]]


def fetched_paths(fhir) -> list[str]:
    return sorted(urlsplit(call.request.url).path.removeprefix("/fhir/") for call in fhir.calls)


RECORD = (b.rls(), b.observation(b.FERRITIN, 38, "ng/mL"), b.kidney_ok())


def test_without_prefetch_everything_is_fetched_with_the_bearer_token(client, fhir):
    serve_record(fhir, *RECORD)
    response = call(client, None)
    assert response.status_code == 200
    assert topics(response) == ["iron-below-target"]
    assert fetched_paths(fhir) == [
        "Condition",
        "MedicationAdministration",
        "MedicationRequest",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Observation",
        f"Patient/{b.PATIENT_ID}",
        "Procedure",
        "ServiceRequest",
    ]
    for made in fhir.calls:
        assert made.request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert made.request.headers["Accept"] == "application/fhir+json"


def test_labs_query_is_the_rendered_template(client, fhir):
    serve_record(fhir, *RECORD)
    call(client, None)
    (labs,) = [c.request.url for c in fhir.calls if "2276-4" in c.request.url]
    query = parse_qs(urlsplit(labs).query)
    assert query["patient"] == [b.PATIENT_ID]
    assert "http://loinc.org|2276-4" in query["code"][0].split(",")


def test_only_the_missing_keys_are_fetched(client, fhir):
    serve_record(fhir, *RECORD)
    prefetch = b.prefetch(*RECORD)
    del prefetch["labs"]
    response = call(client, prefetch)
    assert topics(response) == ["iron-below-target"]
    assert fetched_paths(fhir) == ["Observation"]


def test_a_null_key_is_not_fetched_again(client, fhir):
    prefetch = b.prefetch(*RECORD)
    prefetch["medicationStatements"] = None
    assert call(client, prefetch).status_code == 200
    assert len(fhir.calls) == 0


def test_an_operation_outcome_key_is_fetched(client, fhir):
    serve_record(fhir, *RECORD)
    prefetch = b.prefetch(b.rls())
    prefetch["labs"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
    response = call(client, prefetch)
    assert topics(response) == ["iron-below-target"]
    assert fetched_paths(fhir) == ["Observation"]


@pytest.mark.parametrize("status", [401, 403])
def test_refused_by_the_fhir_server_is_412_naming_the_keys(client, fhir, status):
    serve_record(fhir, *RECORD, status=status)
    response = call(client, None)
    assert response.status_code == 412
    named = {detail["prefetch"] for detail in response.get_json()["details"]}
    assert named == {
        "patient",
        "conditions",
        "labs",
        "weight",
        "medicationRequests",
        "medicationStatements",
        "completedMedicationRequests",
        "medicationAdministrations",
        "serviceRequests",
        "procedures",
    }
    assert TOKEN not in response.get_data(as_text=True)


def test_unreachable_fhir_server_is_412(client, fhir):
    fhir.get(f"{FHIR}/Observation", body=requests.ConnectionError("refused"))
    prefetch = b.prefetch(*RECORD)
    del prefetch["labs"]
    response = call(client, prefetch)
    assert response.status_code == 412
    assert response.get_json()["details"] == [{"prefetch": "labs", "reason": "could not connect"}]


def test_fhir_server_off_the_allow_list_is_400_and_never_contacted(client, fhir):
    body = b.hook_request(fhirServer="https://elsewhere.test/fhir")
    del body["prefetch"]
    response = client.post(HOOK, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert "allow-list" in response.get_json()["message"]
    assert len(fhir.calls) == 0


def test_labs_that_fail_do_not_become_no_ferritin_on_record(client, fhir, caplog):
    """A 500 on the lab query must not fire iron-studies-due ('no ferritin'); it is logged."""
    fhir.get(f"{FHIR}/Observation", status=500)
    prefetch = b.prefetch(b.rls())
    del prefetch["labs"]
    with caplog.at_level("WARNING", logger="cds_service"):
        response = call(client, prefetch)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}
    (record,) = [r for r in caplog.records if r.getMessage().startswith("FHIR data not read")]
    assert record.not_read == {"labs": "HTTP 500"}


def test_conditions_past_the_deadline_answer_empty_cards_in_time(client, fhir):
    fhir.get(f"{FHIR}/Condition", body=requests.ReadTimeout("slow"))
    prefetch = b.prefetch(*RECORD)
    del prefetch["conditions"]
    response = call(client, prefetch)
    assert response.status_code == 200 and response.get_json() == {"cards": []}


def test_referenced_medications_are_read_in_one_search(client, fhir):
    order = b.medication_request()
    del order["medicationCodeableConcept"]
    order["medicationReference"] = {"reference": "Medication/m1"}
    fhir.get(
        f"{FHIR}/Medication",
        json=b.searchset(b.medication("m1", text="Diphenhydramine 25 mg")),
        match=[responses.matchers.query_param_matcher({"_id": "m1"})],
    )
    prefetch = b.prefetch(*RECORD, order)
    assert call(client, prefetch).status_code == 200
    assert fetched_paths(fhir) == ["Medication"]


def test_a_failed_medication_lookup_leaves_the_order_unresolved_not_the_hook(client, fhir):
    order = b.medication_request()
    del order["medicationCodeableConcept"]
    order["medicationReference"] = {"reference": "Medication/m1"}
    fhir.get(f"{FHIR}/Medication", status=500)
    response = call(client, b.prefetch(*RECORD, order))
    assert response.status_code == 200
    assert topics(response) == ["iron-below-target"]


def test_fetching_without_fhir_authorization_sends_no_token(client, fhir):
    """An open FHIR server (no fhirAuthorization) is queried without Authorization."""
    serve_record(fhir, *RECORD)
    body = b.hook_request(fhirServer=FHIR)
    del body["prefetch"]
    response = client.post(HOOK, data=json.dumps(body), content_type="application/json")
    assert topics(response) == ["iron-below-target"]
    assert all("Authorization" not in c.request.headers for c in fhir.calls)


def test_the_token_never_reaches_the_logs(client, fhir, caplog):
    serve_record(fhir, *RECORD, status=401)
    with caplog.at_level("DEBUG"):
        call(client, None)
    assert TOKEN not in caplog.text
    assert all(TOKEN not in str(record.__dict__) for record in caplog.records)


def test_entries_beyond_the_search_bound_are_skipped_and_logged(client, fhir, caplog):
    """Issue 17: a 10,000-entry answer was kept whole; a search keeps RLS_CDS_FHIR_MAX_ENTRIES
    (2,000) entries, and the warning names the key and how many were skipped."""
    conditions = [b.rls()] + [
        {**b.rls(), "id": f"extra-{n}", "code": {"text": "other"}} for n in range(2499)
    ]
    serve_record(fhir, *conditions, *RECORD[1:])
    with caplog.at_level(logging.WARNING, logger="cds_service"):
        response = call(client, None)
    assert response.status_code == 200
    assert topics(response) == ["iron-below-target"]
    (warning,) = [r for r in caplog.records if r.getMessage().startswith("FHIR search cut short")]
    assert warning.cut_short == ["conditions"]  # type: ignore[attr-defined]
    assert warning.skipped_entries == {"conditions": 500}  # type: ignore[attr-defined]
