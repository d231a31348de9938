"""The FHIR sandbox behaves as a FHIR R4 server: read, search, paging, sort, faults.

With RLS_CDS_TEST_FHIR_BASE set these run against that server instead (the tests that
start extra sandbox instances are then skipped).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import requests

from tests.integration.fhir_sandbox import (
    BASE_URL_ENV,
    FIXTURE_BUNDLES,
    FhirServer,
    load_bundles,
    start_sandbox,
    stop_sandbox,
)

pytestmark = pytest.mark.slow

FHIR_JSON = "application/fhir+json"
LOINC = "http://loinc.org"
LOW_FERRITIN_BUNDLE = next(p for p in FIXTURE_BUNDLES if p.name == "rls-low-ferritin.json")
local_sandbox_only = pytest.mark.skipif(
    bool(os.environ.get(BASE_URL_ENV, "").strip()),
    reason=f"{BASE_URL_ENV} is set: no local sandbox is started",
)


def get(url: str, params: dict[str, str] | None = None, **kwargs) -> requests.Response:
    headers = {"Accept": FHIR_JSON, **kwargs.pop("headers", {})}
    return requests.get(url, params=params, headers=headers, timeout=30, **kwargs)


def search(server: FhirServer, query: str) -> dict:
    response = get(f"{server.base_url}/{query}")
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    return bundle


def ids(bundle: dict) -> list[str]:
    return [
        entry["resource"]["id"]
        for entry in bundle.get("entry", [])
        if entry.get("search", {}).get("mode", "match") == "match"
    ]


def next_link(bundle: dict) -> str | None:
    return next(
        (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
    )


def test_reads_a_patient(fhir_server):
    response = get(f"{fhir_server.base_url}/Patient/rls-low-ferritin")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    patient = response.json()
    assert patient["resourceType"] == "Patient"
    assert patient["id"] == "rls-low-ferritin"
    assert patient["name"][0]["family"] == "Ortega"


def test_unknown_resource_is_404_with_operation_outcome(fhir_server):
    response = get(f"{fhir_server.base_url}/Patient/no-such-patient")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_token_search_by_system_and_code_finds_the_ferritin(fhir_server):
    bundle = search(fhir_server, f"Observation?patient=rls-low-ferritin&code={LOINC}|2276-4")
    assert ids(bundle) == ["rls-low-ferritin-ferritin"]
    (entry,) = bundle["entry"]
    assert entry["resource"]["valueQuantity"]["value"] == 38


def test_token_search_with_several_codes_sorted_and_counted(fhir_server):
    bundle = search(
        fhir_server,
        f"Observation?patient=rls-low-ferritin&code={LOINC}|2276-4,{LOINC}|2502-3"
        "&_sort=-date&_count=2",
    )
    assert sorted(ids(bundle)) == ["rls-low-ferritin-ferritin", "rls-low-ferritin-tsat"]


def test_reference_search_by_bare_id_and_by_type_and_id(fhir_server):
    bare = search(fhir_server, "Condition?patient=rls-ckd")
    assert sorted(ids(bare)) == ["rls-ckd-dialysis", "rls-ckd-esrd", "rls-ckd-rls"]
    typed = search(fhir_server, "Condition?subject=Patient/rls-ckd")
    assert sorted(ids(typed)) == sorted(ids(bare))


def test_paging_follows_absolute_next_links(fhir_server):
    bundle = search(fhir_server, "Observation?patient=rls-low-ferritin&_count=2")
    pages = [ids(bundle)]
    url = next_link(bundle)
    assert url is not None
    assert url.startswith("http")
    while url is not None:
        assert len(pages) < 10, "paging does not end"
        response = get(url)
        assert response.status_code == 200, response.text
        bundle = response.json()
        pages.append(ids(bundle))
        url = next_link(bundle)
    assert [len(page) for page in pages] == [2, 2, 1]
    seen = [i for page in pages for i in page]
    assert sorted(seen) == sorted(
        f"rls-low-ferritin-{name}" for name in ("ferritin", "iron", "tibc", "tsat", "creatinine")
    )


def test_medication_request_search_by_status_list(fhir_server):
    bundle = search(
        fhir_server, "MedicationRequest?patient=rls-antihistamine&status=active,on-hold"
    )
    assert ids(bundle) == ["rls-antihistamine-diphenhydramine"]
    coding = bundle["entry"][0]["resource"]["medicationCodeableConcept"]
    assert "diphenhydramine" in (coding.get("text", "") + str(coding.get("coding"))).lower()


def test_sort_by_date_both_ways(fhir_server):
    newest_first = search(fhir_server, "Observation?patient=rls-no-iron-studies&_sort=-date")
    assert ids(newest_first) == [
        "rls-no-iron-studies-creatinine",
        "rls-no-iron-studies-ferritin-2024",
    ]
    oldest_first = search(fhir_server, "Observation?patient=rls-no-iron-studies&_sort=date")
    assert ids(oldest_first) == list(reversed(ids(newest_first)))


def test_date_prefix_search(fhir_server):
    bundle = search(fhir_server, "Observation?patient=rls-no-iron-studies&date=ge2025-01-01")
    assert ids(bundle) == ["rls-no-iron-studies-creatinine"]


@local_sandbox_only
def test_unsupported_search_is_refused_not_silently_empty(fhir_server):
    response = get(f"{fhir_server.base_url}/Observation?subject.name=Ortega")
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.fixture(scope="module")
def guarded_sandbox() -> Iterator[tuple[str, str]]:
    token = "sandbox-test-token"
    process, base_url = start_sandbox({"SANDBOX_REQUIRE_TOKEN": token})
    try:
        yield base_url, token
    finally:
        stop_sandbox(process)


@local_sandbox_only
def test_required_token_gives_401_without_it_and_200_with_it(guarded_sandbox):
    base_url, token = guarded_sandbox
    load_bundles(base_url, [LOW_FERRITIN_BUNDLE], headers={"Authorization": f"Bearer {token}"})
    url = f"{base_url}/Patient/rls-low-ferritin"
    missing = get(url)
    assert missing.status_code == 401
    assert missing.json()["resourceType"] == "OperationOutcome"
    wrong = get(url, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    right = get(url, headers={"Authorization": f"Bearer {token}"})
    assert right.status_code == 200
    assert right.json()["id"] == "rls-low-ferritin"


@local_sandbox_only
def test_delay_slows_every_response():
    process, base_url = start_sandbox({"SANDBOX_DELAY_MS": "200"})
    try:
        load_bundles(base_url, [LOW_FERRITIN_BUNDLE])
        started = time.perf_counter()
        response = get(f"{base_url}/Patient/rls-low-ferritin")
        elapsed = time.perf_counter() - started
    finally:
        stop_sandbox(process)
    assert response.status_code == 200
    assert elapsed >= 0.2
