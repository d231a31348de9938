"""The CDS Hooks Sandbox's exact requests, replayed against the service over HTTP.

The files in sandbox_shapes/ (see its README) hold what the sandbox sends: its prefetch
(only the keys its FHIR server returned, searchset Bundles from POST ``_search``), a
``fhirServer`` the service never needs to contact, draft orders with ``{pill}`` doses and
``category`` as one CodeableConcept, and its feedback bodies. Each is sent as the sandbox
sends it (``Accept: application/json``, a bearer JWT that demo mode does not check) to the
service on a real socket.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from cds_service.app import create_app
from cds_service.hooks.services import OPTIONAL_KEYS
from cds_service.settings import Settings
from tests.builders import NOW
from tests.live import serving
from tests.test_fixtures import EXPECTED_TOPICS

SHAPES = Path(__file__).resolve().parent / "sandbox_shapes"
PATIENT_VIEW = "rls-secondary-causes"
#: What the sandbox's ``new Date().toISOString()`` gives at NOW.
OUTCOME_TIMESTAMP = NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z")
#: The sandbox always signs its calls (demo mode reads no token; its shape is what counts).
SANDBOX_HEADERS = {
    "Accept": "application/json",
    "Authorization": "Bearer eyJhbGciOiJFUzM4NCJ9.e30.c2lnbmF0dXJl",
}


def shape(name: str, **values: str) -> Any:
    """A recorded request with its placeholders filled in."""
    text = (SHAPES / name).read_text("utf-8")
    values = {"hookInstance": str(uuid.uuid4()), "today": NOW.date().isoformat(), **values}
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    assert "{{" not in text.replace("{{context.", ""), f"{name}: a placeholder is left"
    return json.loads(text)


@pytest.fixture
def service(tmp_path) -> Iterator[tuple[Flask, str]]:
    """The service in demo mode on a real socket, with a store of its own."""
    settings = Settings(demo=True, data_dir=tmp_path, log_level="ERROR")
    app = create_app(settings, clock=lambda: NOW)
    with serving(app) as base:
        yield app, base


def call(base: str, service_id: str, body: Any) -> requests.Response:
    return requests.post(
        f"{base}/cds-services/{service_id}", json=body, headers=SANDBOX_HEADERS, timeout=30
    )


def send_feedback(base: str, service_id: str, body: Any) -> requests.Response:
    return requests.post(
        f"{base}/cds-services/{service_id}/feedback",
        json=body,
        headers=SANDBOX_HEADERS,
        timeout=30,
    )


def topics(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [card["source"]["topic"]["code"] for card in response.json()["cards"]]


def flush(app: Flask) -> None:
    assert app.extensions["rls_cds"].feedback.recorder.flush()


@pytest.mark.parametrize("patient", ["rls-low-ferritin", "rls-gabapentin-ckd"])
def test_patient_view_with_the_sandbox_prefetch_gets_the_patients_cards(service, patient):
    _, base = service
    body = shape(f"patient-view.{patient}.json")
    assert body["fhirServer"].startswith("https://launch.smarthealthit.org/")
    assert topics(call(base, PATIENT_VIEW, body)) == EXPECTED_TOPICS[patient]


def without_supply(body: dict) -> dict:
    """The sandbox's draft without ``dispenseRequest``, hence without ``intent`` and
    ``category`` (its code has that branch; its default state always has a 30-day supply)."""
    body = copy.deepcopy(body)
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    for key in ("dispenseRequest", "intent", "category"):
        draft.pop(key, None)
    return body


def test_order_select_with_a_sandbox_draft_flags_the_selected_order(service):
    _, base = service
    body = shape("order-select.rls-low-ferritin.metoclopramide.json")
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    assert draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] == "{pill}"
    assert body["context"]["selections"] == ["MedicationRequest/request-123"]
    answer = call(base, "rls-order-select", body)
    assert topics(answer) == ["dopamine-antagonist-antiemetic"]
    (card,) = answer.json()["cards"]
    deleted = [
        a["resourceId"] for s in card["suggestions"] for a in s["actions"] if a["type"] == "delete"
    ]
    assert deleted == ["MedicationRequest/request-123"] * 2


def test_order_sign_reads_the_sandboxs_pill_dose_and_category_object(service):
    """One ``{pill}`` of a 600 mg tablet three times daily is 1800 mg/day, above the label's
    limit at CrCl 37; the update it suggests is valid R4 (``category`` a list again)."""
    _, base = service
    body = shape("order-sign.rls-gabapentin-ckd.gabapentin.json")
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    assert isinstance(draft["category"], dict)
    answer = call(base, "rls-order-sign", body)
    assert topics(answer) == ["gabapentinoid-renal-dose"]
    (card,) = answer.json()["cards"]
    assert "1800 mg/day" in card["summary"]
    (update,) = [a for s in card["suggestions"] for a in s["actions"] if a["type"] == "update"]
    resource = update["resource"]
    assert resource["id"] == "request-123" and resource["intent"] == "order"
    assert resource["category"] == [draft["category"]]
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] == "mg"


def test_a_sandbox_draft_without_intent_still_gets_its_card_but_no_update(service):
    """Without ``intent`` the order is not valid R4, so no one-click update is offered back
    (the card says so); the card and its cancel suggestion are."""
    _, base = service
    body = without_supply(shape("order-sign.rls-gabapentin-ckd.gabapentin.json"))
    answer = call(base, "rls-order-sign", body)
    assert topics(answer) == ["gabapentinoid-renal-dose"]
    (card,) = answer.json()["cards"]
    assert "could not be offered: the order as recorded is not valid FHIR R4" in card["detail"]
    actions = [a["type"] for s in card["suggestions"] for a in s["actions"]]
    assert actions == ["delete"]


def test_the_sandboxs_feedback_bodies_are_stored_and_its_override_hides_the_card(service):
    app, base = service
    body = shape("patient-view.rls-low-ferritin.json")
    (card,) = call(base, PATIENT_VIEW, body).json()["cards"]
    flush(app)
    values = {"card": card["uuid"], "outcomeTimestamp": OUTCOME_TIMESTAMP}
    suggestion = card["suggestions"][0]["uuid"]
    for name, extra in [
        ("feedback.accepted.json", {"suggestion": suggestion}),
        ("feedback.dismissed.json", {}),
        ("feedback.overridden.json", {"reasonCode": "not-clinically-relevant"}),
    ]:
        answer = send_feedback(base, PATIENT_VIEW, shape(name, **values, **extra))
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json() == {"received": 1, "stored": 1, "alreadyStored": 0}, name
    assert topics(call(base, PATIENT_VIEW, shape("patient-view.rls-low-ferritin.json"))) == [
        "iron-below-target"
    ]
    override = shape("feedback.overridden.json", **values, reasonCode="already-addressed")
    assert send_feedback(base, PATIENT_VIEW, override).json()["stored"] == 1
    again = shape("patient-view.rls-low-ferritin.json")
    assert topics(call(base, PATIENT_VIEW, again)) == []
    # Sent twice, as the sandbox does when a clinician clicks again: stored once.
    assert send_feedback(base, PATIENT_VIEW, override).json()["alreadyStored"] == 1


def test_the_specs_override_with_a_display_and_a_user_comment_is_stored(service):
    app, base = service
    (card,) = call(base, PATIENT_VIEW, shape("patient-view.rls-gabapentin-ckd.json")).json()[
        "cards"
    ][:1]
    flush(app)
    body = shape(
        "feedback.overridden-with-comment.json",
        card=card["uuid"],
        outcomeTimestamp=OUTCOME_TIMESTAMP,
        reasonCode="already-addressed",
    )
    answer = send_feedback(base, PATIENT_VIEW, body)
    assert answer.status_code == 200 and answer.json()["stored"] == 1
    store = app.extensions["rls_cds"].feedback.store
    with store.engine.connect() as connection:
        comments = connection.exec_driver_sql("SELECT user_comment FROM feedback").scalars().all()
    assert "Started oral iron last week." in comments


@pytest.mark.parametrize("key", sorted(OPTIONAL_KEYS))
def test_a_prefetch_key_the_sandbox_could_not_fetch_is_done_without_when_optional(service, key):
    """The sandbox leaves out a key its FHIR server did not answer. The service may not
    fetch from that server (not on its allow-list): an optional key is done without, as
    when no fhirServer is named, instead of refusing the call."""
    _, base = service
    body = shape("patient-view.rls-low-ferritin.json")
    del body["prefetch"][key]
    assert topics(call(base, PATIENT_VIEW, body)) == EXPECTED_TOPICS["rls-low-ferritin"]


def test_a_required_key_the_sandbox_could_not_fetch_is_still_refused(service):
    _, base = service
    body = shape("patient-view.rls-low-ferritin.json")
    del body["prefetch"]["labs"]
    answer = call(base, PATIENT_VIEW, body)
    assert answer.status_code == 400
    assert answer.json()["message"] == "fhirServer is not on this service's allow-list"


HOOK_REQUESTS = sorted(p.name for p in SHAPES.glob("*.json") if not p.name.startswith("feedback."))


@pytest.mark.parametrize("name", HOOK_REQUESTS)
def test_the_recordings_hold_every_key_of_the_services_prefetch(service, name):
    """The sandbox fetched every key of the discovery document it read: a recording with
    other keys is stale (re-record with ``python -m tests.interop.record_sandbox_shapes``)."""
    _, base = service
    body = shape(name)
    discovery = requests.get(f"{base}/cds-services", headers=SANDBOX_HEADERS, timeout=30).json()
    (described,) = [s for s in discovery["services"] if s["hook"] == body["hook"]]
    assert set(body["prefetch"]) == set(described["prefetch"])


def as_dstu2(body: dict) -> dict:
    """The draft the sandbox makes for a DSTU2 server (its default one): a MedicationOrder
    with ``patient``, ``dateWritten`` and the dose directly on the dosage instruction."""
    body = copy.deepcopy(body)
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    order |= {"resourceType": "MedicationOrder", "id": "order-123"}
    order["patient"] = order.pop("subject")
    order["dateWritten"] = order.pop("authoredOn")
    dosage = order["dosageInstruction"][0]
    dosage["doseQuantity"] = dosage.pop("doseAndRate")[0]["doseQuantity"]
    dosage["timing"]["repeat"]["periodUnits"] = dosage["timing"]["repeat"].pop("periodUnit")
    if "selections" in body["context"]:
        body["context"]["selections"] = ["MedicationOrder/order-123"]
    return body


@pytest.mark.parametrize(
    ("name", "service_id"),
    [
        ("order-select.rls-low-ferritin.metoclopramide.json", "rls-order-select"),
        ("order-sign.rls-gabapentin-ckd.gabapentin.json", "rls-order-sign"),
    ],
)
def test_a_dstu2_medication_order_is_answered_without_a_card(service, name, service_id):
    """The service reads FHIR R4 (README: choose the sandbox's R4 server): a DSTU2
    MedicationOrder is no MedicationRequest, so nothing is said about it, but the call is
    answered, never refused."""
    _, base = service
    assert call(base, service_id, as_dstu2(shape(name))).json() == {"cards": []}
