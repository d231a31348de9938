"""The order services over HTTP (issue 7): order-select then order-sign of the same order,
request validation, the discovery prefetch, and fetching a referenced Medication."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses
from fhir.resources.R4B.medicationrequest import MedicationRequest

from tests import builders as b
from tests.fake_fhir import FHIR, serve_record

SELECT = "/cds-services/rls-order-select"
SIGN = "/cds-services/rls-order-sign"
HOOK_OF = {SELECT: "order-select", SIGN: "order-sign"}
ORDER_TOPICS = {
    "sedating-antihistamine",
    "serotonergic-antidepressant",
    "antipsychotic",
    "dopamine-antagonist-antiemetic",
    "dopamine-agonist-augmentation",
    "gabapentinoid-renal-dose",
}
ORDER_PREFETCH_KEYS = {
    "patient",
    "conditions",
    "labs",
    "weight",
    "medicationRequests",
    "medicationStatements",
}
OVERRIDE_CODES = ["benefit-outweighs-risk", "tolerated-before", "short-course"]
AUTHORIZATION = {
    "access_token": "ehr-token-order-hooks",
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "patient/*.read",
    "subject": "rls-cds",
}
CKD = b.observation(b.EGFR, 40, "mL/min/{1.73_m2}")  # gabapentin limit 1400 mg/day


def gabapentin_draft(draft_id: str = "gaba-1") -> dict:
    """Gabapentin 1800 mg/day at eGFR 40: above the label limit, through a contained drug."""
    return {
        "resourceType": "MedicationRequest",
        "id": draft_id,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
        "authoredOn": "2026-11-28",
        "contained": [b.medication("m1", "Gabapentin 300 mg oral capsule", "310431")],
        "medicationReference": {"reference": "#m1"},
        "dosageInstruction": [
            {
                "text": "600 mg by mouth three times daily",
                "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": 600,
                            "unit": "mg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mg",
                        }
                    }
                ],
            }
        ],
    }


def text_draft(text: str, draft_id: str) -> dict:
    request = b.medication_request(text=text, status="draft")
    request["id"] = draft_id
    return request


def draft_orders(*drafts: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": d} for d in drafts],
    }


def order_prefetch(*record: dict) -> dict:
    prefetch = b.prefetch(b.rls(), *record)
    for key in set(prefetch) - ORDER_PREFETCH_KEYS:  # orders and past medications
        del prefetch[key]
    return prefetch


def order_body(hook: str, drafts: list[dict], prefetch: dict | None, **context: Any) -> dict:
    request: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/example",
            "patientId": b.PATIENT_ID,
            "draftOrders": draft_orders(*drafts),
        },
    }
    if hook == "order-select":
        request["context"]["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts]
    request["context"].update(context)
    if prefetch is not None:
        request["prefetch"] = prefetch
    return request


def post_json(client, url: str, body: object):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def assert_valid_cards(response_json: dict) -> None:
    assert set(response_json) == {"cards"}
    for card in response_json["cards"]:
        assert uuid.UUID(card["uuid"])
        assert 0 < len(card["summary"]) < 140
        assert card["indicator"] in {"warning", "critical"}
        assert card["source"]["label"]
        assert card["source"]["topic"]["code"] in ORDER_TOPICS
        assert card["detail"]
        assert [r["code"] for r in card["overrideReasons"]] == OVERRIDE_CODES
        if card.get("suggestions"):
            assert card["selectionBehavior"] == "at-most-one"
        for suggestion in card.get("suggestions", []):
            assert uuid.UUID(suggestion["uuid"])
            for action in suggestion["actions"]:
                if "resource" in action:
                    MedicationRequest.model_validate(action["resource"])


# --- order-select, then order-sign of the same order ------------------------------------


def test_the_same_gabapentin_order_warns_at_select_and_is_critical_at_sign(client):
    draft = gabapentin_draft()
    prefetch = order_prefetch(CKD)
    selected = post_json(client, SELECT, order_body("order-select", [draft], prefetch))
    signed = post_json(client, SIGN, order_body("order-sign", [draft], prefetch))
    assert selected.status_code == signed.status_code == 200
    assert_valid_cards(selected.get_json())
    assert_valid_cards(signed.get_json())
    (at_select,) = selected.get_json()["cards"]
    (at_sign,) = signed.get_json()["cards"]
    assert at_select["source"]["topic"]["code"] == "gabapentinoid-renal-dose"
    assert (at_select["indicator"], at_sign["indicator"]) == ("warning", "critical")
    assert b.strip_uuids({**at_select, "indicator": None}) == b.strip_uuids(
        {**at_sign, "indicator": None}
    )
    (suggestion,) = at_sign["suggestions"]
    (update,) = suggestion["actions"]
    assert update["type"] == "update"
    assert update["resource"]["id"] == "gaba-1"
    assert update["resource"]["dosageInstruction"] != draft["dosageInstruction"]


def test_the_same_antihistamine_order_at_select_and_at_sign(client):
    drafts = [text_draft("Hydroxyzine 25 mg tablet", "hx"), text_draft("Amoxicillin", "amx")]
    prefetch = order_prefetch(b.kidney_ok())
    select_body = order_body("order-select", drafts, prefetch, selections=["MedicationRequest/hx"])
    selected = post_json(client, SELECT, select_body).get_json()
    signed = post_json(client, SIGN, order_body("order-sign", drafts, prefetch)).get_json()
    assert_valid_cards(selected)
    assert_valid_cards(signed)
    assert [c["indicator"] for c in selected["cards"]] == ["warning"]
    assert [c["indicator"] for c in signed["cards"]] == ["warning"]
    assert b.strip_uuids(selected) == b.strip_uuids(signed)
    (card,) = signed["cards"]
    deletes = {
        a["resourceId"] for s in card["suggestions"] for a in s["actions"] if a["type"] == "delete"
    }
    assert deletes == {"MedicationRequest/hx"}


def test_selecting_only_the_non_culprit_gets_exactly_no_cards(client):
    drafts = [text_draft("Hydroxyzine 25 mg tablet", "hx"), text_draft("Amoxicillin", "amx")]
    body = order_body(
        "order-select", drafts, order_prefetch(), selections=["MedicationRequest/amx"]
    )
    response = post_json(client, SELECT, body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


@pytest.mark.parametrize("url", [SELECT, SIGN])
def test_patient_without_rls_gets_exactly_no_cards(client, url):
    hook = HOOK_OF[url]
    prefetch = b.prefetch(CKD)
    del prefetch["serviceRequests"], prefetch["procedures"]
    drafts = [gabapentin_draft(), text_draft("Metoclopramide 10 mg", "mcp")]
    response = post_json(client, url, order_body(hook, drafts, prefetch))
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


@pytest.mark.parametrize("url", [SELECT, SIGN])
def test_active_medications_on_record_are_not_carded_in_order_hooks(client, url):
    hook = HOOK_OF[url]
    prefetch = order_prefetch(
        b.kidney_ok(), b.medication_request(text="Diphenhydramine 25 mg capsule")
    )
    body = order_body(hook, [text_draft("Amoxicillin 500 mg", "amx")], prefetch)
    assert post_json(client, url, body).get_json() == {"cards": []}


# --- request validation ------------------------------------------------------------------


@pytest.mark.parametrize("url", [SELECT, SIGN])
@pytest.mark.parametrize(
    "draft_orders",
    [
        gabapentin_draft(),  # a MedicationRequest, not a Bundle
        [gabapentin_draft()],
        "Bundle",
        {"type": "collection", "entry": []},
    ],
    ids=["resource", "list", "string", "no-resource-type"],
)
def test_draft_orders_that_are_not_a_bundle_are_400_naming_it(client, url, draft_orders):
    hook = HOOK_OF[url]
    body = order_body(hook, [gabapentin_draft()], order_prefetch(CKD))
    body["context"]["draftOrders"] = draft_orders
    response = post_json(client, url, body)
    assert response.status_code == 400
    error = response.get_json()
    assert error["error"] == "invalid-request"
    locs = [d["loc"] for d in error["details"]]
    assert any(loc.startswith("context.draftOrders") for loc in locs), locs


@pytest.mark.parametrize("url", [SELECT, SIGN])
def test_missing_draft_orders_is_400_naming_it(client, url):
    hook = HOOK_OF[url]
    body = order_body(hook, [gabapentin_draft()], order_prefetch(CKD))
    del body["context"]["draftOrders"]
    response = post_json(client, url, body)
    assert response.status_code == 400
    assert "context.draftOrders" in [d["loc"] for d in response.get_json()["details"]]


def test_order_select_without_selections_is_400(client):
    body = order_body("order-select", [gabapentin_draft()], order_prefetch(CKD))
    del body["context"]["selections"]
    response = post_json(client, SELECT, body)
    assert response.status_code == 400
    assert "context.selections" in [d["loc"] for d in response.get_json()["details"]]


def test_order_sign_needs_no_selections(client):
    body = order_body("order-sign", [gabapentin_draft()], order_prefetch(CKD))
    assert "selections" not in body["context"]
    assert post_json(client, SIGN, body).status_code == 200


# --- discovery and prefetch --------------------------------------------------------------


def order_services(client) -> list[dict]:
    services = client.get("/cds-services").get_json()["services"]
    return [s for s in services if s["hook"] in ("order-select", "order-sign")]


def test_order_services_prefetch_what_the_order_rules_read_and_no_orders(client):
    services = order_services(client)
    assert [(s["id"], s["hook"]) for s in services] == [
        ("rls-order-select", "order-select"),
        ("rls-order-sign", "order-sign"),
    ]
    for service in services:
        assert set(service["prefetch"]) == ORDER_PREFETCH_KEYS
        assert "serviceRequests" not in service["prefetch"]
        assert "procedures" not in service["prefetch"]


def test_a_prefetch_of_exactly_the_discovery_keys_answers(client):
    (select, sign) = order_services(client)
    prefetch = order_prefetch(CKD)
    assert set(prefetch) == set(select["prefetch"]) == set(sign["prefetch"])
    for url, hook in ((SELECT, "order-select"), (SIGN, "order-sign")):
        response = post_json(client, url, order_body(hook, [gabapentin_draft()], prefetch))
        assert response.status_code == 200
        assert len(response.get_json()["cards"]) == 1


def test_absent_prefetch_without_fhir_server_is_412_naming_the_order_keys(client):
    response = post_json(client, SIGN, order_body("order-sign", [gabapentin_draft()], None))
    assert response.status_code == 412
    named = {d["prefetch"] for d in response.get_json()["details"]}
    assert named <= ORDER_PREFETCH_KEYS
    assert {"patient", "conditions", "labs", "medicationRequests"} <= named


# --- no prefetch: fetched from the EHR, with the draft's Medication read by id ----------


def referencing_draft(medication_id: str) -> dict:
    request = text_draft("placeholder", "mcp-1")
    del request["medicationCodeableConcept"]
    request["medicationReference"] = {"reference": f"Medication/{medication_id}"}
    return request


@pytest.mark.parametrize(("url", "hook"), [(SELECT, "order-select"), (SIGN, "order-sign")])
def test_a_drafts_medication_missing_from_the_request_is_read_by_id(
    fetching_client, fhir, url, hook
):
    serve_record(fhir, b.rls(), b.kidney_ok())
    fhir.get(
        f"{FHIR}/Medication",
        json=b.searchset(b.medication("med-1", "Metoclopramide 10 mg oral tablet", "311666")),
        match=[responses.matchers.query_param_matcher({"_id": "med-1"})],
    )
    body = order_body(hook, [referencing_draft("med-1")], None)
    body |= {"fhirServer": FHIR, "fhirAuthorization": AUTHORIZATION}
    response = post_json(fetching_client, url, body)
    assert response.status_code == 200
    assert_valid_cards(response.get_json())
    (card,) = response.get_json()["cards"]
    assert card["source"]["topic"]["code"] == "dopamine-antagonist-antiemetic"
    assert card["indicator"] == "warning"
    deletes = {
        a["resourceId"] for s in card["suggestions"] for a in s["actions"] if a["type"] == "delete"
    }
    assert deletes == {"MedicationRequest/mcp-1"}
    paths = sorted(urlsplit(c.request.url).path.removeprefix("/fhir/") for c in fhir.calls)
    assert "Medication" in paths
    assert "ServiceRequest" not in paths and "Procedure" not in paths
    (lookup,) = [
        c.request.url for c in fhir.calls if urlsplit(c.request.url).path.endswith("/Medication")
    ]
    assert urlsplit(lookup).query == "_id=med-1"


class TestSelectionsMustNameDrafts:
    """order-select: a selection that is none of the draft orders is an integration error,
    answered 400 naming the item by position (never echoing the request's text)."""

    DRAFTS = (text_draft("Hydroxyzine 25 mg tablet", "hx"), text_draft("Amoxicillin", "amx"))

    def test_a_selection_matching_no_draft_is_400_naming_it(self, client):
        body = order_body(
            "order-select", list(self.DRAFTS), order_prefetch(), selections=["MedicationRequest/zz"]
        )
        response = post_json(client, SELECT, body)
        assert response.status_code == 400
        details = response.get_json()["details"]
        assert [d["loc"] for d in details] == ["context.selections.0"]
        assert "MedicationRequest/zz" not in response.get_data(as_text=True)

    def test_only_the_unmatched_selections_are_named(self, client):
        selections = ["MedicationRequest/hx", "hx", "MedicationRequest/amx", "Patient/hx"]
        body = order_body(
            "order-select", list(self.DRAFTS), order_prefetch(), selections=selections
        )
        response = post_json(client, SELECT, body)
        assert response.status_code == 400
        locs = [d["loc"] for d in response.get_json()["details"]]
        assert locs == ["context.selections.1", "context.selections.3"]

    def test_a_selected_draft_of_another_type_or_by_full_url_is_accepted(self, client):
        service_request = {"resourceType": "ServiceRequest", "id": "lab1", "status": "draft",
                           "intent": "order", "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
                           "code": {"text": "Ferritin"}}  # fmt: skip
        body = order_body("order-select", [*self.DRAFTS, service_request], order_prefetch(),
                          selections=["ServiceRequest/lab1", "urn:uuid:hx-draft"])  # fmt: skip
        body["context"]["draftOrders"]["entry"][0]["fullUrl"] = "urn:uuid:hx-draft"
        assert post_json(client, SELECT, body).status_code == 200
