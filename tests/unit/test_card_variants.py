"""Every variant of every card is reachable, and its rule fills every template variable.

The load-time check (knowledge.py) proves templates only use declared variables; this proves
the rules provide them, and that the rendered card is complete for each variant.
"""

from __future__ import annotations

import pytest

from cds_service.cards import CardRenderer
from cds_service.clinical.medications import read_drafts
from cds_service.knowledge import template_fields
from tests import builders as b
from tests.builders import ICD10CM, KNOWLEDGE, SNOMED

o = b.observation
RENDERER = CardRenderer(KNOWLEDGE)
RECENT_LABS = (b.kidney_ok(), o(b.FERRITIN, 150, "ng/mL"))


def gabapentinoid(text: str, dose_text: str | None = None) -> dict:
    request = b.medication_request(text=text)
    if dose_text:
        request["dosageInstruction"] = [{"text": dose_text}]
    return request


def pregnant() -> dict:
    return b.condition(b.coding(SNOMED, "77386006", "Pregnancy"), onset="2026-06-01")


def weight(kg: float) -> dict:
    return o(b.WEIGHT, kg, "kg")


#: name -> resources (an RLS condition is added) whose findings reach the listed variants.
CASES: dict[str, tuple[tuple[dict, ...], dict[str, str]]] = {
    "nothing-tested": ((), {"iron-studies-due": "never", "renal-function-due": "never"}),
    "outdated": (
        (
            o(b.FERRITIN, 150, "ng/mL", when="2024-01-05"),
            o(b.CREATININE, 0.8, "mg/dL", when="2024-01-05"),
        ),
        {"iron-studies-due": "outdated", "renal-function-due": "outdated"},
    ),
    "oral-or-iv": (
        (b.kidney_ok(), o(b.FERRITIN, 30, "ng/mL")),
        {"iron-below-target": "oral-or-iv"},
    ),
    "iv-only": ((b.kidney_ok(), o(b.FERRITIN, 90, "ng/mL")), {"iron-below-target": "iv-only"}),
    "esrd": (
        (b.esrd(), b.kidney_ok(), o(b.FERRITIN, 150, "ng/mL"), o(b.TSAT, 12, "%")),
        {"iron-below-target": "esrd", "kidney-disease": "esrd-listed"},
    ),
    "esrd-by-egfr": (
        (o(b.EGFR, 12, "mL/min/{1.73_m2}"), o(b.FERRITIN, 150, "ng/mL"), o(b.TSAT, 12, "%")),
        {"iron-below-target": "esrd-egfr", "kidney-disease": "kidney-failure"},
    ),
    "child": (
        (b.kidney_ok(), o(b.FERRITIN, 30, "ng/mL"), weight(28)),
        {"iron-below-target": "child"},
    ),
    "overload": (
        (
            b.kidney_ok(),
            o(b.FERRITIN, 30, "ng/mL"),
            b.condition(b.coding(ICD10CM, "E83.110", "Hereditary hemochromatosis")),
        ),
        {"iron-below-target": "overload"},
    ),
    "inflammation": (
        (b.kidney_ok(), o(b.FERRITIN, 620, "ng/mL"), o(b.TSAT, 12, "%")),
        {"iron-below-target": "inflammation"},
    ),
    "on-iron": (
        (
            b.kidney_ok(),
            o(b.FERRITIN, 60, "ng/mL"),
            b.medication_request(code="310325", text="ferrous sulfate 325 MG Oral Tablet"),
        ),
        {"iron-below-target": "on-iron"},
    ),
    "pregnant-low-iron": (
        (
            pregnant(),
            b.kidney_ok(),
            o(b.FERRITIN, 50, "ng/mL"),
            b.medication_request(text="Pramipexole 0.25 mg"),
        ),
        {
            "iron-below-target": "pregnancy",
            "pregnancy": "ferritin-known",
            "dopamine-agonist-augmentation": "pregnancy",
        },
    ),
    "pregnant-untested": (
        (pregnant(), b.kidney_ok()),
        {"pregnancy": "ferritin-due", "iron-studies-due": "never"},
    ),
    "egfr-low": (
        (o(b.EGFR, 42, "mL/min/{1.73_m2}"), *RECENT_LABS[1:]),
        {"kidney-disease": "egfr-low"},
    ),
    "kidney-failure": (
        (
            o(b.EGFR, 12, "mL/min/{1.73_m2}"),
            *RECENT_LABS[1:],
            gabapentinoid("Gabapentin 300 MG Oral Capsule", "300 mg three times daily"),
        ),
        {"kidney-disease": "kidney-failure", "gabapentinoid-renal-dose": "above-limit"},
    ),
    "listed": (
        (
            b.condition(b.coding(ICD10CM, "N18.32")),
            *RECENT_LABS,
            gabapentinoid("Pregabalin 75 MG Oral Capsule"),
        ),
        {"kidney-disease": "listed"},
    ),
    "dialysis": (
        (
            b.condition(b.coding(ICD10CM, "Z99.2")),
            *RECENT_LABS,
            gabapentinoid("Horizant 600 MG extended release tablet", "600 mg daily"),
        ),
        {"kidney-disease": "dialysis", "gabapentinoid-renal-dose": "not-recommended"},
    ),
    "dose-unknown": (
        (
            o(b.EGFR, 40, "mL/min/{1.73_m2}"),
            *RECENT_LABS[1:],
            gabapentinoid("Gabapentin 300 MG Oral Capsule", "as directed"),
        ),
        {"gabapentinoid-renal-dose": "dose-unknown", "kidney-disease": "egfr-low"},
    ),
    "problems": (
        (
            *RECENT_LABS,
            b.condition(b.coding(ICD10CM, "G62.9")),
            b.condition(b.coding(ICD10CM, "I83.93")),
            b.condition(b.coding(ICD10CM, "I73.9")),
            b.condition(b.coding(ICD10CM, "Z86.718")),
        ),
        {
            "neuropathy-or-radiculopathy": "default",
            "venous-insufficiency": "default",
            "peripheral-arterial-disease": "default",
            "prior-dvt": "default",
        },
    ),
    "drugs": (
        (
            *RECENT_LABS,
            b.medication_request(text="Diphenhydramine HCl 25 mg"),
            b.medication_request(text="Sertraline 50 mg"),
            b.medication_request(text="Quetiapine 25 mg"),
            b.medication_request(text="Metoclopramide 10 mg"),
            b.medication_request(text="Ropinirole 1 mg"),
            weight(80),
        ),
        {
            "sedating-antihistamine": "default",
            "serotonergic-antidepressant": "default",
            "antipsychotic": "default",
            "dopamine-antagonist-antiemetic": "default",
            "dopamine-agonist-augmentation": "default",
        },
    ),
}


#: Cases whose patient is not the default adult.
PATIENTS = {"child": {"birth_date": "2017-05-01", "gender": "male"}}


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_reaches_its_variants_with_every_template_value(name):
    resources, expected = CASES[name]
    found = b.findings(*resources, **PATIENTS.get(name, {}))
    assert {topic: f.variant for topic, f in found.items()} == expected
    for finding in found.values():
        card = KNOWLEDGE.cards[finding.topic]
        variant = card.variants[finding.variant]
        needed = template_fields(variant.summary) | template_fields(variant.detail)
        needed -= set(card.thresholds)
        assert needed <= set(finding.values), (finding.topic, needed - set(finding.values))
    for card in RENDERER.render(found.values(), b.PATIENT_ID, b.NOW):
        assert "{" not in card["summary"] and "{" not in card["detail"]
        assert len(card["summary"]) < 140


def test_every_declared_variant_is_reached():
    reached = {
        (topic, variant) for _, expected in CASES.values() for topic, variant in expected.items()
    }
    reached |= {(t, v) for *_, expected in ORDER_CASES.values() for t, v in expected.items()}
    declared = {(topic, v) for topic, card in KNOWLEDGE.cards.items() for v in card.variants}
    assert declared == reached


def draft(text: str, dose_text: str | None = None) -> dict:
    request = gabapentinoid(text, dose_text)
    request["status"] = "draft"
    return request


#: name -> (record, draft orders, expected {topic: variant}) for order-sign.
ORDER_CASES: dict[str, tuple[tuple[dict, ...], tuple[dict, ...], dict[str, str]]] = {
    "drugs": (
        RECENT_LABS,
        (
            draft("Hydroxyzine 25 mg"),
            draft("Paroxetine 20 mg"),
            draft("Haloperidol 1 mg"),
            draft("Prochlorperazine 10 mg"),
            draft("Rotigotine (Neupro) 1 mg/24 h patch"),
        ),
        {
            "sedating-antihistamine": "draft",
            "serotonergic-antidepressant": "draft",
            "antipsychotic": "draft",
            "dopamine-antagonist-antiemetic": "draft",
            "dopamine-agonist-augmentation": "draft",
        },
    ),
    "pregnant": (
        (pregnant(), *RECENT_LABS),
        (draft("Levodopa/carbidopa 100/25 mg"),),
        {"dopamine-agonist-augmentation": "draft-pregnancy"},
    ),
    "above-limit": (
        (o(b.EGFR, 40, "mL/min/{1.73_m2}"), *RECENT_LABS[1:]),
        (draft("Gabapentin 100 MG Oral Capsule", "600 mg three times daily"),),
        {"gabapentinoid-renal-dose": "draft-above-limit"},
    ),
    "dose-unknown": (
        (o(b.EGFR, 40, "mL/min/{1.73_m2}"), *RECENT_LABS[1:]),
        (draft("Pregabalin 75 MG Oral Capsule", "as directed"),),
        {"gabapentinoid-renal-dose": "draft-dose-unknown"},
    ),
    "dialysis": (
        (b.condition(b.coding(ICD10CM, "Z99.2")), *RECENT_LABS),
        (draft("Horizant 600 MG extended release tablet", "600 mg daily"),),
        {"gabapentinoid-renal-dose": "draft-not-recommended"},
    ),
}


def order_findings(record: tuple[dict, ...], drafts: tuple[dict, ...], hook: str):
    picture = b.picture(b.rls(), *record)
    facts = read_drafts(
        b.searchset(*drafts), {}, b.PATIENT_ID, KNOWLEDGE.value_sets, picture.report
    )
    return b.ENGINE.order_view(picture, facts, hook)


@pytest.mark.parametrize("name", sorted(ORDER_CASES))
def test_order_case_reaches_its_draft_variants(name):
    record, drafts, expected = ORDER_CASES[name]
    found = order_findings(record, drafts, "order-sign")
    assert {f.topic: f.variant for f in found} == expected
    for finding in found:
        variant = KNOWLEDGE.cards[finding.topic].variants[finding.variant]
        needed = template_fields(variant.summary) | template_fields(variant.detail)
        assert needed <= set(finding.values)
    for card in RENDERER.render(found, b.PATIENT_ID, b.NOW):
        assert "{" not in card["summary"] and len(card["summary"]) < 140
        assert [r["code"] for r in card["overrideReasons"]] == [
            "benefit-outweighs-risk",
            "tolerated-before",
            "short-course",
        ]
