"""Order hooks (issue 7; docs/card-topics.md "Order hooks"): draft orders get the drug cards.

Each of the six order topics, on order-select and order-sign, for every way a draft can name
its drug (text, RxNorm code, contained Medication, Medication elsewhere in draftOrders); the
response is the Evaluator's, so `selections` and the draft reading are those of the service.
"""

from __future__ import annotations

import copy
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from fhir.resources.R4B.medicationrequest import MedicationRequest

from cds_service.clinical.engine import ORDER_TOPICS
from cds_service.clinical.medications import read_drafts
from cds_service.errors import RequestInvalid
from cds_service.evaluation import Evaluator, FhirAccess
from cds_service.fhir.client import FhirClient
from cds_service.hooks.services import ORDER_SELECT, ORDER_SIGN, build_services
from cds_service.outbound import AllowList
from tests import builders as b
from tests.builders import KNOWLEDGE, SNOMED

HOOKS = ("order-select", "order-sign")
SERVICE = {"order-select": ORDER_SELECT, "order-sign": ORDER_SIGN}
OVERRIDE_CODES = ["benefit-outweighs-risk", "tolerated-before", "short-course"]
LORATADINE = "311372"
FEXOFENADINE = "997420"
ONDANSETRON = "198052"
ORAL = {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]}
#: eGFR 40: gabapentin "over 30 to 59 mL/min", label limit 1400 mg/day.
CKD_RECORD = (b.observation(b.EGFR, 40, "mL/min/{1.73_m2}"),)
GABAPENTIN_LIMIT_AT_40 = 1400

EVALUATOR = Evaluator(
    KNOWLEDGE,
    build_services(KNOWLEDGE.value_sets),
    lambda: b.NOW,
    FhirAccess(
        FhirClient(requests.Session(), 1.0, 1, allowed=AllowList()),
        ThreadPoolExecutor(1),
        AllowList(),
        2.0,
    ),
)


@dataclass(frozen=True)
class Culprit:
    """A drug that fires `topic` when ordered, by text and by RxNorm code (value sets)."""

    topic: str
    text: str
    code: str
    dose: str | None = None


CULPRITS = {
    c.topic: c
    for c in (
        Culprit("sedating-antihistamine", "Diphenhydramine HCl 25 mg oral capsule", "901813"),
        Culprit("serotonergic-antidepressant", "Sertraline 50 mg oral tablet", "36437"),
        Culprit("antipsychotic", "Quetiapine 25 mg oral tablet", "51272"),
        Culprit("dopamine-antagonist-antiemetic", "Metoclopramide 10 mg oral tablet", "311666"),
        Culprit("dopamine-agonist-augmentation", "Pramipexole 0.25 mg oral tablet", "859040"),
        Culprit(
            "gabapentinoid-renal-dose",
            "Gabapentin 300 mg oral capsule",
            "310431",
            "600 mg by mouth three times daily",
        ),
    )
}
TOPICS = list(CULPRITS)
FORMS = ("text", "code", "contained", "referenced")


def draft(
    text: str | None = None,
    code: str | None = None,
    *,
    draft_id: str = "d1",
    status: str = "draft",
    dose: str | None = None,
    patient_id: str = b.PATIENT_ID,
) -> dict:
    """A draft MedicationRequest with a fixed id, naming its drug inline."""
    request = b.medication_request(code=code, text=text, status=status, patient_id=patient_id)
    request["id"] = draft_id
    request["authoredOn"] = "2026-11-28"
    if dose:
        request["dosageInstruction"] = [{"text": dose, "route": ORAL}]
    return request


def culprit_draft(topic: str, form: str = "text", draft_id: str = "d1", **kwargs: Any) -> list:
    """The draftOrders entries for one culprit draft of `topic`, named in `form`."""
    culprit = CULPRITS[topic]
    kwargs.setdefault("dose", culprit.dose)
    if form == "text":
        return [draft(text=culprit.text, draft_id=draft_id, **kwargs)]
    if form == "code":
        return [draft(code=culprit.code, draft_id=draft_id, **kwargs)]
    request = draft(text="placeholder", draft_id=draft_id, **kwargs)
    del request["medicationCodeableConcept"]
    medication = b.medication("m1" if form == "contained" else "x", culprit.text, culprit.code)
    if form == "contained":
        request["contained"] = [medication]
        request["medicationReference"] = {"reference": "#m1"}
        return [request]
    assert form == "referenced"
    request["medicationReference"] = {"reference": "Medication/x"}
    return [medication, request]


def ref(draft_id: str) -> str:
    return f"MedicationRequest/{draft_id}"


def bundle(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }


def body(
    hook: str,
    drafts: list[dict],
    record: tuple[dict, ...] = CKD_RECORD,
    selections: list[str] | None = None,
    rls: bool = True,
) -> dict:
    """An order hook request with the order services' prefetch keys; order-select selects
    every MedicationRequest in `drafts` unless `selections` says otherwise."""
    prefetch = b.prefetch(*((b.rls(),) if rls else ()), *record)
    del prefetch["serviceRequests"], prefetch["procedures"]
    context: dict[str, Any] = {
        "userId": "Practitioner/example",
        "patientId": b.PATIENT_ID,
        "draftOrders": bundle(*drafts),
    }
    if hook == "order-select":
        context["selections"] = (
            selections
            if selections is not None
            else [ref(d["id"]) for d in drafts if d["resourceType"] == "MedicationRequest"]
        )
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": context,
        "prefetch": prefetch,
    }


def respond(hook: str, drafts: list[dict], **kwargs: Any) -> dict:
    return EVALUATOR.evaluate(SERVICE[hook], body(hook, drafts, **kwargs)).response


def cards(hook: str, drafts: list[dict], **kwargs: Any) -> list[dict]:
    return respond(hook, drafts, **kwargs)["cards"]


def only_card(hook: str, drafts: list[dict], **kwargs: Any) -> dict:
    found = cards(hook, drafts, **kwargs)
    assert len(found) == 1, [c["source"]["topic"]["code"] for c in found]
    return found[0]


def topic_of(card: dict) -> str:
    return card["source"]["topic"]["code"]


def actions(card: dict, kind: str) -> list[dict]:
    return [a for s in card.get("suggestions", []) for a in s["actions"] if a["type"] == kind]


def expected_indicator(topic: str, hook: str) -> str:
    above_limit = topic == "gabapentinoid-renal-dose"  # the culprit dose is above the limit
    return "critical" if above_limit and hook == "order-sign" else "warning"


# --- each topic, each hook, each way of naming the drug ---------------------------------


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("topic", TOPICS)
def test_a_culprit_draft_gets_its_topic_card(topic, hook, form):
    card = only_card(hook, culprit_draft(topic, form))
    assert topic_of(card) == topic
    assert card["indicator"] == expected_indicator(topic, hook)
    assert "this order" in card["summary"].lower()
    assert len(card["summary"]) < 140 and "{" not in card["summary"] + card["detail"]
    assert uuid.UUID(card["uuid"])
    assert [r["code"] for r in card["overrideReasons"]] == OVERRIDE_CODES


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("topic", TOPICS)
def test_the_draft_card_names_the_ordered_drug(topic, hook):
    card = only_card(hook, culprit_draft(topic, "text"))
    drug = CULPRITS[topic].text.split()[0]
    assert drug in card["detail"]


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("topic", TOPICS)
def test_engine_gives_draft_variants_and_the_hook_indicator(topic, hook):
    picture = b.picture(b.rls(), *CKD_RECORD)
    facts = read_drafts(
        bundle(*culprit_draft(topic)), {}, b.PATIENT_ID, KNOWLEDGE.value_sets, picture.report
    )
    (finding,) = b.ENGINE.order_view(picture, facts, hook)
    assert finding.topic == topic
    assert finding.variant.startswith("draft")
    assert finding.indicator == expected_indicator(topic, hook)


def test_order_topics_are_the_six_of_the_contract():
    assert set(ORDER_TOPICS) == set(TOPICS)


# --- suggestions act on the draft -------------------------------------------------------


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("topic", TOPICS)
def test_suggestions_act_on_the_draft_and_are_valid_fhir(topic, hook):
    card = only_card(hook, culprit_draft(topic, "contained", draft_id="order-42"))
    assert card["suggestions"], topic
    assert card["selectionBehavior"] == "at-most-one"
    for suggestion in card["suggestions"]:
        assert suggestion["label"] and uuid.UUID(suggestion["uuid"])
        assert suggestion["actions"]
        for action in suggestion["actions"]:
            assert action["description"]
            if action["type"] == "delete":
                assert action["resourceId"] == "MedicationRequest/order-42"
            else:
                resource = action["resource"]
                MedicationRequest.model_validate(resource)
                assert resource["resourceType"] == "MedicationRequest"
                assert resource["subject"] == {"reference": f"Patient/{b.PATIENT_ID}"}
                if action["type"] == "update":
                    assert resource["id"] == "order-42"
                else:
                    assert action["type"] == "create" and resource["status"] == "draft"


#: Whether to start an antidepressant or an antipsychotic is the prescriber's judgement
#: (docs/card-topics.md: "none automatic"): cancelling the draft is offered, not recommended.
#: No suggestion pre-selected: the prescriber's judgement (and, for a sedating antihistamine,
#: the indication: docs/card-topics.md "Sedating antihistamines").
JUDGEMENT_TOPICS = ("serotonergic-antidepressant", "antipsychotic", "sedating-antihistamine")


@pytest.mark.parametrize("topic", TOPICS)
def test_one_suggestion_is_recommended_where_the_evidence_supports_one(topic):
    """Issue 7: `selectionBehavior` at-most-one, one suggestion isRecommended."""
    for hook in HOOKS:
        card = only_card(hook, culprit_draft(topic))
        assert card["selectionBehavior"] == "at-most-one"
        recommended = [s for s in card["suggestions"] if s.get("isRecommended")]
        expected = 0 if topic in JUDGEMENT_TOPICS else 1
        assert len(recommended) == expected, (hook, [s["label"] for s in card["suggestions"]])


def created_codes(suggestion: dict) -> list[str]:
    return [
        c["code"]
        for a in suggestion["actions"]
        if a["type"] == "create"
        for c in a["resource"]["medicationCodeableConcept"]["coding"]
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_antihistamine_draft_for_allergy_is_replaced_by_loratadine_or_fexofenadine(hook):
    hx = draft(text="Hydroxyzine 25 mg tablet", draft_id="hx")
    hx["reasonCode"] = [{"text": "Allergic rhinitis"}]
    card = only_card(hook, [hx])
    by_code = {tuple(created_codes(s)): s for s in card["suggestions"]}
    assert set(by_code) == {(LORATADINE,), (FEXOFENADINE,), ()}
    assert not any(s.get("isRecommended") for s in card["suggestions"])  # nothing pre-selected
    for suggestion in card["suggestions"]:
        deletes = [a["resourceId"] for a in suggestion["actions"] if a["type"] == "delete"]
        assert deletes == ["MedicationRequest/hx"]


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize(
    "antiemetic", ["Metoclopramide 10 mg oral tablet", "Prochlorperazine 10 mg oral tablet"]
)
def test_dopamine_blocking_antiemetic_draft_is_replaced_by_ondansetron(hook, antiemetic):
    card = only_card(hook, [draft(text=antiemetic, draft_id="ae")])
    (replace,) = [s for s in card["suggestions"] if created_codes(s)]
    assert created_codes(replace) == [ONDANSETRON]
    assert replace.get("isRecommended") is True
    assert [a["resourceId"] for a in replace["actions"] if a["type"] == "delete"] == [
        "MedicationRequest/ae"
    ]
    (create,) = [a for a in replace["actions"] if a["type"] == "create"]
    MedicationRequest.model_validate(create["resource"])
    assert create["resource"]["authoredOn"].startswith("2026-11-28")


def per_day(dosage: dict) -> float:
    dose = dosage["doseAndRate"][0]["doseQuantity"]
    assert dose["unit"] == "mg"
    repeat = dosage["timing"]["repeat"]
    assert repeat["periodUnit"] == "d"
    return dose["value"] * repeat["frequency"] / repeat["period"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("hook", HOOKS)
def test_gabapentinoid_above_the_limit_gets_one_update_inside_the_band(hook, form):
    entries = culprit_draft("gabapentinoid-renal-dose", form, draft_id="gaba")
    card = only_card(hook, entries)
    assert card["selectionBehavior"] == "at-most-one"
    suggestion, cancel = card["suggestions"]
    assert suggestion["label"].startswith("Reduce to ")
    assert [a["type"] for a in cancel["actions"]] == ["delete"]  # or cancel the order
    (update,) = suggestion["actions"]
    assert update["type"] == "update"
    resource = update["resource"]
    MedicationRequest.model_validate(resource)
    original = next(e for e in entries if e["resourceType"] == "MedicationRequest")
    assert resource["id"] == "gaba" and resource["status"] == "draft"
    for key in ("medicationCodeableConcept", "medicationReference", "contained", "subject"):
        assert resource.get(key) == original.get(key)
    (dosage,) = resource["dosageInstruction"]
    assert 0 < per_day(dosage) <= GABAPENTIN_LIMIT_AT_40
    assert dosage["route"] == ORAL
    # the updated order, ordered again, is inside the band: no card
    again = copy.deepcopy([e for e in entries if e["resourceType"] != "MedicationRequest"])
    assert cards(hook, [*again, resource]) == []


@pytest.mark.parametrize("hook", HOOKS)
def test_gabapentinoid_within_the_band_gets_no_card(hook):
    within = draft(text="Gabapentin 300 mg oral capsule", dose="300 mg three times daily")
    assert respond(hook, [within]) == {"cards": []}


# --- indicators -------------------------------------------------------------------------


def test_gabapentinoid_above_the_limit_is_warning_at_select_and_critical_at_sign():
    entries = culprit_draft("gabapentinoid-renal-dose")
    assert only_card("order-select", entries)["indicator"] == "warning"
    assert only_card("order-sign", entries)["indicator"] == "critical"


@pytest.mark.parametrize("hook", HOOKS)
def test_gabapentinoid_dose_not_readable_is_a_warning(hook):
    unreadable = draft(text="Pregabalin 75 mg oral capsule", dose="as directed")
    card = only_card(hook, [unreadable])
    assert topic_of(card) == "gabapentinoid-renal-dose"
    assert card["indicator"] == "warning"
    assert [r["code"] for r in card["overrideReasons"]] == OVERRIDE_CODES
    assert not actions(card, "update")


@pytest.mark.parametrize("hook", HOOKS)
def test_horizant_on_dialysis_is_a_warning_with_a_delete_of_the_draft(hook):
    dialysis = b.condition(b.coding(b.ICD10CM, "Z99.2"))
    horizant = draft(text="Horizant 600 mg extended release tablet", dose="600 mg daily")
    card = only_card(hook, [horizant], record=(dialysis, b.kidney_ok()))
    assert topic_of(card) == "gabapentinoid-renal-dose"
    assert card["indicator"] == "warning"
    assert [a["resourceId"] for a in actions(card, "delete")] == ["MedicationRequest/d1"]
    assert [r["code"] for r in card["overrideReasons"]] == OVERRIDE_CODES


# --- selections and several drafts -------------------------------------------------------


def several() -> list[dict]:
    return [
        draft(text="Diphenhydramine 25 mg capsule", draft_id="dph"),
        draft(code="5553", draft_id="hyd"),  # hydroxyzine, coded only
        draft(text="Sertraline 50 mg tablet", draft_id="ser"),
        draft(text="Amoxicillin 500 mg capsule", draft_id="amx"),
    ]


def test_a_selection_of_a_non_culprit_draft_gets_no_card_though_a_culprit_is_drafted():
    drafts = [
        draft(text="Amoxicillin 500 mg capsule", draft_id="amx"),
        *culprit_draft("sedating-antihistamine", draft_id="dph"),
    ]
    response = respond("order-select", drafts, selections=[ref("amx")])
    assert response == {"cards": []}


@pytest.mark.parametrize("topic", TOPICS)
def test_an_unselected_culprit_of_each_topic_gets_no_card(topic):
    drafts = [draft(text="Amoxicillin 500 mg capsule", draft_id="amx"), *culprit_draft(topic)]
    assert respond("order-select", drafts, selections=[ref("amx")]) == {"cards": []}
    assert topic_of(only_card("order-sign", drafts)) == topic


def test_selections_naming_no_draft_are_refused_not_answered_with_no_card():
    """A selection that is none of the drafts was answered {"cards": []}, silently: the
    integrator could not tell it from a safe order (issue 19). It is a 400 now."""
    drafts = culprit_draft("antipsychotic")
    with pytest.raises(RequestInvalid) as refused:
        cards("order-select", drafts, selections=["MedicationRequest/elsewhere"])
    assert [d["loc"] for d in refused.value.details] == ["context.selections.0"]


def test_order_select_cards_are_about_the_selected_culprits_only():
    found = cards("order-select", several(), selections=[ref("hyd"), ref("amx")])
    (card,) = found
    assert topic_of(card) == "sedating-antihistamine"
    assert "Hydroxyzine" in card["detail"] and "Diphenhydramine" not in card["detail"]
    assert {a["resourceId"] for a in actions(card, "delete")} == {ref("hyd")}


@pytest.mark.parametrize("hook", HOOKS)
def test_several_drafts_one_card_per_topic_naming_every_culprit(hook):
    found = cards(hook, several())
    by_topic = {topic_of(c): c for c in found}
    assert len(found) == len(by_topic) == 2
    antihistamine = by_topic["sedating-antihistamine"]
    assert "Diphenhydramine" in antihistamine["detail"]
    assert "Hydroxyzine" in antihistamine["detail"]
    for suggestion in antihistamine["suggestions"]:
        deletes = [a["resourceId"] for a in suggestion["actions"] if a["type"] == "delete"]
        assert sorted(deletes) == [ref("dph"), ref("hyd")]
    antidepressant = by_topic["serotonergic-antidepressant"]
    assert {a["resourceId"] for a in actions(antidepressant, "delete")} == {ref("ser")}
    assert all(ref("amx") not in str(card) for card in found)


def test_all_six_topics_in_one_order_sign_each_once_critical_first():
    drafts = [e for i, t in enumerate(TOPICS) for e in culprit_draft(t, draft_id=f"d{i}")]
    found = cards("order-sign", drafts)
    assert sorted(topic_of(c) for c in found) == sorted(TOPICS)
    assert found[0]["indicator"] == "critical"
    assert topic_of(found[0]) == "gabapentinoid-renal-dose"
    assert {c["indicator"] for c in found[1:]} == {"warning"}
    for card in found:
        assert [r["code"] for r in card["overrideReasons"]] == OVERRIDE_CODES


def test_two_drafts_referencing_medications_in_draft_orders_each_resolve():
    first = b.medication("x", "Haloperidol 1 mg tablet")
    second = b.medication("y", "Olanzapine 5 mg tablet")
    drafts = []
    for med, draft_id in ((first, "h"), (second, "o")):
        request = draft(text="placeholder", draft_id=draft_id)
        del request["medicationCodeableConcept"]
        request["medicationReference"] = {"reference": f"Medication/{med['id']}"}
        drafts += [med, request]
    card = only_card("order-sign", drafts)
    assert "Haloperidol" in card["detail"] and "Olanzapine" in card["detail"]
    assert {a["resourceId"] for a in actions(card, "delete")} == {ref("h"), ref("o")}


# --- what never fires --------------------------------------------------------------------


ON_RECORD = (
    b.medication_request(text="Diphenhydramine 25 mg capsule"),
    b.medication_request(code="36437"),  # sertraline
    b.medication_statement(text="Quetiapine 25 mg tablet"),
    b.medication_request(text="Metoclopramide 10 mg tablet"),
    b.medication_request(text="Ropinirole 1 mg tablet"),
    {
        **b.medication_request(text="Gabapentin 300 mg oral capsule"),
        "dosageInstruction": [{"text": "600 mg three times daily"}],
    },
)


@pytest.mark.parametrize("hook", HOOKS)
def test_active_medications_on_record_produce_no_card(hook):
    amoxicillin = draft(text="Amoxicillin 500 mg capsule")
    assert respond(hook, [amoxicillin], record=(*CKD_RECORD, *ON_RECORD)) == {"cards": []}


@pytest.mark.parametrize("hook", HOOKS)
def test_a_draft_card_does_not_repeat_medications_on_record(hook):
    card = only_card(
        hook, culprit_draft("sedating-antihistamine", "text"), record=(*CKD_RECORD, *ON_RECORD)
    )
    assert topic_of(card) == "sedating-antihistamine"
    assert "Sertraline" not in card["detail"] and "Quetiapine" not in card["detail"]
    assert {a["resourceId"] for a in actions(card, "delete")} == {ref("d1")}


@pytest.mark.parametrize("hook", HOOKS)
def test_patient_without_rls_gets_exactly_no_cards(hook):
    drafts = [e for i, t in enumerate(TOPICS) for e in culprit_draft(t, draft_id=f"d{i}")]
    assert respond(hook, drafts, rls=False) == {"cards": []}


@pytest.mark.parametrize("hook", HOOKS)
def test_resolved_rls_gets_no_cards(hook):
    record = (b.rls(clinical="resolved"), *CKD_RECORD)
    drafts = culprit_draft("sedating-antihistamine")
    assert respond(hook, drafts, record=record, rls=False) == {"cards": []}


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error", "stopped"])
@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("topic", TOPICS)
def test_drafts_cancelled_in_error_or_stopped_never_fire(topic, hook, status):
    assert respond(hook, culprit_draft(topic, status=status)) == {"cards": []}


@pytest.mark.parametrize("status", ["active", "on-hold"])
def test_active_or_on_hold_requests_in_draft_orders_count(status):
    """docs/card-topics.md: in draftOrders, `draft`, `active` and `on-hold` requests count."""
    card = only_card("order-sign", culprit_draft("antipsychotic", status=status))
    assert topic_of(card) == "antipsychotic"


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("topic", TOPICS)
def test_a_draft_for_another_patient_never_fires(topic, hook):
    drafts = culprit_draft(topic, patient_id="someone-else")
    assert respond(hook, drafts) == {"cards": []}


# --- pregnancy ---------------------------------------------------------------------------


def pregnant() -> dict:
    return b.condition(b.coding(SNOMED, "77386006", "Pregnancy"), onset="2026-06-01")


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("form", FORMS)
def test_dopamine_agonist_draft_in_pregnancy_points_to_no_alpha_2_delta_ligand(hook, form):
    record = (pregnant(), *CKD_RECORD)
    entries = culprit_draft("dopamine-agonist-augmentation", form)
    picture = b.picture(b.rls(), *record)
    facts = read_drafts(bundle(*entries), {}, b.PATIENT_ID, KNOWLEDGE.value_sets, picture.report)
    (finding,) = b.ENGINE.order_view(picture, facts, hook)
    assert finding.variant == "draft-pregnancy"
    card = only_card(hook, entries, record=record)
    assert card["indicator"] == "warning"
    assert "pregnancy" in card["summary"].lower()
    text = (card["summary"] + card["detail"]).lower()
    for advice in ("alpha-2-delta", "gabapentin", "pregabalin"):
        assert advice not in text
    assert [r["code"] for r in card["overrideReasons"]] == OVERRIDE_CODES
    assert [a["resourceId"] for a in actions(card, "delete")] == [ref("d1")]


@pytest.mark.parametrize("hook", HOOKS)
def test_gabapentinoid_above_the_limit_in_pregnancy_gets_no_update(hook):
    card = only_card(
        hook, culprit_draft("gabapentinoid-renal-dose"), record=(pregnant(), *CKD_RECORD)
    )
    assert topic_of(card) == "gabapentinoid-renal-dose"
    assert not actions(card, "update")
    assert "obstetric" in card["detail"]
    assert [r["code"] for r in card["overrideReasons"]] == OVERRIDE_CODES


def test_a_medication_referenced_by_its_draft_orders_full_url_resolves():
    medication = b.medication("m9", "Prochlorperazine 10 mg tablet")
    request = draft(text="placeholder", draft_id="pcz")
    del request["medicationCodeableConcept"]
    request["medicationReference"] = {"reference": "urn:uuid:4f1d2c3e-0000-4000-8000-000000000001"}
    draft_orders = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:4f1d2c3e-0000-4000-8000-000000000001", "resource": medication},
            {"resource": request},
        ],
    }
    request_body = body("order-sign", [])
    request_body["context"]["draftOrders"] = draft_orders
    (card,) = EVALUATOR.evaluate(ORDER_SIGN, request_body).response["cards"]
    assert topic_of(card) == "dopamine-antagonist-antiemetic"
    assert {a["resourceId"] for a in actions(card, "delete")} == {ref("pcz")}
