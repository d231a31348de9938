"""The iron safety paths over HTTP: each record of tests/iron_cases.py posted to the
patient-view service, and every iron order in the response checked against what the path
allows (the same table the engine tests use)."""

from __future__ import annotations

import pytest

from tests import builders as b
from tests.fake_fhir import FHIR, serve_record
from tests.iron_cases import CASES, IRON_KEYS, LOW, WOMAN_40

HOOK = "/cds-services/rls-secondary-causes"
TOPIC = "iron-below-target"
CARD = b.KNOWLEDGE.cards[TOPIC]
NOTES = b.KNOWLEDGE.notes
HISTORY_KEYS = ("completedMedicationRequests", "medicationAdministrations")
IRON_SETS = [b.KNOWLEDGE.value_sets[v] for v in ("iron-oral", "iron-iv")]


def medication_text(key: str) -> str:
    [action] = [a for a in CARD.suggestions[key].actions if a.resource == "MedicationRequest"]
    assert action.text is not None
    return action.text


def iron_orders(cards: list[dict]) -> list[tuple[str, str]]:
    """(topic, medication text) of every suggested MedicationRequest that gives iron."""
    found = []
    for card in cards:
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                resource = action.get("resource") or {}
                if resource.get("resourceType") != "MedicationRequest":
                    continue
                text = resource["medicationCodeableConcept"]["text"]
                if any(vs.names_in(text) for vs in IRON_SETS):
                    found.append((card["source"]["topic"]["code"], text))
    return found


def post(client, prefetch: dict) -> list[dict]:
    response = client.post(HOOK, json=b.hook_request(prefetch))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"]


HTTP_CASES = sorted(name for name, case in CASES.items() if "medications" not in case.unavailable)


@pytest.mark.parametrize("name", HTTP_CASES)
def test_each_path_over_http(client, name):
    case = CASES[name]
    prefetch = b.prefetch(b.rls(), *case.resources, with_patient=b.patient(**case.patient))
    if "medication-history" in case.unavailable:
        for key in HISTORY_KEYS:  # not prefetched, and no FHIR server to fetch them from
            del prefetch[key]
    cards = post(client, prefetch)
    by_topic = {card["source"]["topic"]["code"]: card for card in cards}
    if case.variant is None:
        assert TOPIC not in by_topic
        assert iron_orders(cards) == []
        return
    card = by_topic[TOPIC]
    expected = sorted((TOPIC, medication_text(k)) for k in case.offered if k in IRON_KEYS)
    assert sorted(set(iron_orders(cards))) == expected
    for note in case.notes:
        assert NOTES[note][0].text.split("{")[0].strip() in card["detail"], note
    referral = any(
        a["resource"]["code"]["coding"][0]["code"] == "183523005"
        for s in card.get("suggestions", [])
        for a in s["actions"]
        if a["resource"]["resourceType"] == "ServiceRequest"
    )
    assert referral is ("gi-referral" in case.companions)


def test_medications_that_could_not_be_fetched_mean_no_iron(fetching_client, fhir):
    """The medication list fails at the EHR: the card still fires, offers no iron, says why."""
    serve_record(fhir, *LOW)
    fhir.replace("GET", f"{FHIR}/MedicationRequest", status=500)
    prefetch = b.prefetch(b.rls(), *LOW, with_patient=b.patient(**WOMAN_40))
    del prefetch["medicationRequests"]
    body = b.hook_request(prefetch, fhirServer=FHIR)
    response = fetching_client.post(HOOK, json=body)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    [card] = [c for c in cards if c["source"]["topic"]["code"] == TOPIC]
    assert iron_orders(cards) == []
    assert "No iron is offered: the medication list could not be read" in card["detail"]


def test_a_haemochromatosis_patient_gets_no_iron_in_any_card(client):
    record = (*LOW, b.condition(b.coding(b.ICD10CM, "E83.110", "Hereditary hemochromatosis")))
    cards = post(client, b.prefetch(b.rls(), *record))
    assert iron_orders(cards) == []
    [card] = [c for c in cards if c["source"]["topic"]["code"] == TOPIC]
    assert "haematology" in card["summary"]
    # A woman of 58 with ferritin 30: the work-up for the cause is all that is offered.
    resources = [a["resource"] for s in card["suggestions"] for a in s["actions"]]
    assert {r["resourceType"] for r in resources} == {"ServiceRequest"}
