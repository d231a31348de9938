"""Pregnancy: who counts as pregnant now, the ferritin variants, and what pregnancy changes
in other topics (iron target, dopamine agonists, no dopaminergic or gabapentinoid
suggestions)."""

from __future__ import annotations

import pytest

from cds_service.cards import CardRenderer
from cds_service.clinical.rules import pregnancy as rule
from cds_service.clinical.rules.pregnancy import is_pregnant
from tests import builders as b
from tests.builders import ICD10CM, LOINC, SNOMED, UCUM

RECENT = "2026-10-15T08:00:00Z"
OLD = "2025-06-01T08:00:00Z"
PARAMS = b.params("pregnancy")
CDC_RACE = "urn:oid:2.16.840.1.113883.6.238"
POSITIVE = "10828004"
NEGATIVE = "260385009"
#: NOW minus the 300-day pregnancy window.
WINDOW_START = "2026-02-01T12:00:00Z"


def pregnant(*codings: dict, **kwargs) -> dict:
    return b.condition(*codings, **kwargs)


def z33_1(**kwargs) -> dict:
    return b.condition(b.coding(ICD10CM, "Z33.1", "Pregnant state, incidental"), **kwargs)


def hcg(
    answer: str | None = POSITIVE,
    when: str = RECENT,
    code: str = "2106-3",
    system: str = LOINC,
    answer_text: str | None = None,
    value_string: str | None = None,
    status: str = "final",
) -> dict:
    """A qualitative pregnancy test with a coded (SNOMED) or text answer."""
    resource: dict = {
        "resourceType": "Observation",
        "id": b._id(),
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
        "effectiveDateTime": when,
    }
    if answer or answer_text:
        concept: dict = {}
        if answer:
            concept["coding"] = [{"system": SNOMED, "code": answer}]
        if answer_text:
            concept["text"] = answer_text
        resource["valueCodeableConcept"] = concept
    if value_string:
        resource["valueString"] = value_string
    return resource


def ferritin(value, when=RECENT) -> dict:
    return b.observation(b.FERRITIN, value, "ng/mL", when=when)


def tsat(value, when=RECENT) -> dict:
    return b.observation(b.TSAT, value, "%", when=when)


def service_request(code: str, text: str, status: str = "active") -> dict:
    return {
        "resourceType": "ServiceRequest",
        "id": b._id(),
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
        "code": {"coding": [b.coding(LOINC, code)], "text": text},
        "authoredOn": "2026-11-20",
    }


def via_engine(*resources: dict, **kwargs) -> list:
    found = b.findings(b.kidney_ok(), *resources, **kwargs).get("pregnancy")
    return [found] if found else []


def via_rule(*resources: dict, **kwargs) -> list:
    return rule.pregnancy(b.picture(b.rls(), b.kidney_ok(), *resources, **kwargs), PARAMS)


@pytest.fixture(params=[via_engine, via_rule], ids=["engine", "rule"])
def check(request):
    return request.param


def variants(found: list) -> list[str]:
    return [f.variant for f in found]


render = b.cards_by_topic


PREGNANCY_CODES = [
    (SNOMED, "72892002", "Normal pregnancy"),
    (SNOMED, "77386006", "Pregnancy"),
    (ICD10CM, "Z33.1", "Pregnant state, incidental"),
    (ICD10CM, "Z33.3", "Pregnant state, gestational carrier"),
    (ICD10CM, "Z34.90", "Encounter for supervision of normal pregnancy, unsp trimester"),
    (ICD10CM, "Z34.03", "Supervision of normal first pregnancy, third trimester"),
    (ICD10CM, "O09.513", "Supervision of elderly primigravida, third trimester"),
    (ICD10CM, "Z3A.20", "20 weeks gestation of pregnancy"),
    (ICD10CM, "Z3A20", None),
]


class TestPregnancyCondition:
    @pytest.mark.parametrize(("system", "code", "display"), PREGNANCY_CODES)
    def test_active_pregnancy_condition_fires(self, check, system, code, display):
        [finding] = check(pregnant(b.coding(system, code, display)))
        assert finding.variant == "ferritin-due"
        assert finding.suggestions is None
        assert finding.values["ferritin"] == "not measured in the last 12 months"

    @pytest.mark.parametrize(
        ("system", "code", "display"),
        [
            (ICD10CM, "O80", "Encounter for full-term uncomplicated delivery"),
            (ICD10CM, "O82", "Encounter for cesarean delivery without indication"),
            (ICD10CM, "O90.89", "Other complications of the puerperium"),
            (ICD10CM, "Z39.2", "Encounter for routine postpartum follow-up"),
            (ICD10CM, "Z32.02", "Encounter for pregnancy test, result negative"),
            (ICD10CM, "Z33.2", "Encounter for elective termination of pregnancy"),
            (ICD10CM, "Z37.0", "Single live birth"),
        ],
    )
    def test_delivery_postpartum_and_other_codes_do_not_fire(self, check, system, code, display):
        assert check(pregnant(b.coding(system, code, display))) == []

    def test_text_only_pregnancy_does_not_fire(self, check):
        """No phrases in the pregnancy value set: 'history of pregnancy' must not fire."""
        assert check(pregnant(text="Pregnancy")) == []

    def test_pregnancy_code_with_wrong_system_does_not_fire(self, check):
        assert check(pregnant(b.coding(LOINC, "72892002"))) == []

    @pytest.mark.parametrize("clinical", ["resolved", "inactive", "remission"])
    def test_resolved_pregnancy_does_not_fire(self, check, clinical):
        assert check(z33_1(clinical=clinical)) == []

    @pytest.mark.parametrize("clinical", ["active", "recurrence", "relapse", None])
    def test_active_like_statuses_fire(self, check, clinical):
        assert variants(check(z33_1(clinical=clinical))) == ["ferritin-due"]

    @pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
    def test_refuted_pregnancy_does_not_fire(self, check, verification):
        assert check(z33_1(verification=verification)) == []

    @pytest.mark.parametrize(
        ("onset", "fires"),
        [
            ("2026-11-01", True),
            ("2026-02-02", True),
            (WINDOW_START, True),  # exactly 300 days ago
            ("2026-02-01T11:00:00Z", False),
            ("2026-01-15", False),
            ("2025-06-01", False),
        ],
    )
    def test_onset_more_than_300_days_ago_does_not_fire(self, check, onset, fires):
        assert bool(check(z33_1(onset=onset))) is fires

    def test_recorded_date_stands_in_for_a_missing_onset(self, check):
        old = z33_1()
        old["recordedDate"] = "2025-05-01"
        assert check(old) == []

    def test_undated_active_pregnancy_fires(self, check):
        assert variants(check(z33_1())) == ["ferritin-due"]

    def test_data_cite_the_condition(self, check):
        problem = z33_1(onset="2026-06-01")
        [finding] = check(problem)
        assert [d.source for d in finding.data] == [f"Condition/{problem['id']}"]

    def test_no_rls_no_pregnancy_card(self):
        picture = b.picture(z33_1())
        assert b.ENGINE.patient_view(picture) == []


class TestPregnancyTest:
    @pytest.mark.parametrize("code", ["2106-3", "2118-8", "2110-5", "82810-3", "11449-6"])
    def test_positive_test_within_300_days_fires(self, check, code):
        obs = hcg(code=code)
        [finding] = check(obs)
        assert finding.variant == "ferritin-due"
        assert [d.source for d in finding.data] == [f"Observation/{obs['id']}"]

    @pytest.mark.parametrize(
        "obs",
        [
            hcg(answer="77386006"),
            hcg(answer=None, answer_text="Positive"),
            hcg(answer=None, value_string="positive"),
            hcg(answer=None, answer_text="Pregnant"),
        ],
        ids=["77386006", "text-positive", "valueString", "text-pregnant"],
    )
    def test_other_positive_answers(self, check, obs):
        assert variants(check(obs)) == ["ferritin-due"]

    @pytest.mark.parametrize(
        "obs",
        [
            hcg(answer=NEGATIVE),
            hcg(answer="60001007"),
            hcg(answer=None, answer_text="Not pregnant"),
            hcg(answer=None, value_string="negative"),
            hcg(answer=None),
        ],
        ids=["260385009", "60001007", "text-not-pregnant", "valueString-negative", "no-answer"],
    )
    def test_negative_or_unreadable_answers_do_not_fire(self, check, obs):
        assert check(obs) == []

    @pytest.mark.parametrize(
        ("when", "fires"),
        [
            (WINDOW_START, True),
            ("2026-02-01T11:00:00Z", False),
            ("2025-12-01", False),
            ("2026-11-29T06:00:00Z", True),  # a few hours ahead: clock skew
            ("2026-12-10", False),  # well in the future: not evidence
        ],
    )
    def test_test_window(self, check, when, fires):
        assert bool(check(hcg(when=when))) is fires

    @pytest.mark.parametrize("status", ["cancelled", "entered-in-error", "registered"])
    def test_unusable_status_does_not_count(self, check, status):
        assert check(hcg(status=status)) == []

    def test_cdc_race_code_2106_3_never_counts(self, check):
        """2106-3 is also 'White' in the CDC race code system."""
        assert check(hcg(system=CDC_RACE)) == []

    def test_2106_3_without_a_system_never_counts(self, check):
        obs = hcg()
        del obs["code"]["coding"][0]["system"]
        assert check(obs) == []

    def test_newer_negative_cancels_a_positive(self, check):
        assert check(hcg(when="2026-09-01"), hcg(NEGATIVE, when="2026-10-01")) == []

    def test_older_negative_does_not_cancel_a_positive(self, check):
        found = check(hcg(NEGATIVE, when="2026-08-01"), hcg(when="2026-09-01"))
        assert variants(found) == ["ferritin-due"]

    def test_newer_negative_cancels_a_dated_pregnancy_condition(self, check):
        assert check(z33_1(onset="2026-05-01"), hcg(NEGATIVE, when="2026-06-01")) == []

    def test_negative_before_the_condition_does_not_cancel_it(self, check):
        found = check(hcg(NEGATIVE, when="2026-04-01"), z33_1(onset="2026-05-01"))
        assert variants(found) == ["ferritin-due"]

    def test_negative_outside_the_window_does_not_cancel(self, check):
        found = check(hcg(NEGATIVE, when="2025-12-01"), z33_1(onset="2026-03-01"))
        assert variants(found) == ["ferritin-due"]

    def test_is_pregnant_helper_agrees(self):
        assert is_pregnant(b.picture(b.rls(), hcg()), PARAMS)
        assert not is_pregnant(b.picture(b.rls(), hcg(system=CDC_RACE)), PARAMS)


class TestFerritinVariants:
    def test_ferritin_due_card_suggests_ferritin(self):
        card = render(b.findings(b.kidney_ok(), z33_1()))["pregnancy"]
        assert card["indicator"] == "info"
        [suggestion] = card["suggestions"]
        [action] = suggestion["actions"]
        assert action["resource"]["resourceType"] == "ServiceRequest"
        assert action["resource"]["code"]["coding"][0]["code"] == b.FERRITIN

    @pytest.mark.parametrize(
        "order",
        [
            service_request(b.FERRITIN, "Ferritin"),
            service_request(b.FERRITIN, "Ferritin", status="on-hold"),
            service_request("50190-0", "Iron panel"),
        ],
        ids=["ferritin", "on-hold", "iron-panel"],
    )
    def test_active_ferritin_order_drops_the_suggestion_with_a_note(self, check, order):
        [finding] = check(z33_1(), order)
        assert finding.variant == "ferritin-due"
        assert finding.suggestions == ()
        assert len(finding.notes) == 1
        assert "already ordered" in finding.notes[0]

    def test_rendered_card_with_ferritin_ordered_has_no_suggestion(self):
        found = b.findings(b.kidney_ok(), z33_1(), service_request(b.FERRITIN, "Ferritin"))
        card = render(found)["pregnancy"]
        assert "suggestions" not in card
        assert "already ordered" in card["detail"]

    @pytest.mark.parametrize("status", ["revoked", "entered-in-error"])
    def test_cancelled_ferritin_order_keeps_the_suggestion(self, check, status):
        [finding] = check(z33_1(), service_request(b.FERRITIN, "Ferritin", status=status))
        assert (finding.suggestions, finding.notes) == (None, ())

    @pytest.mark.parametrize(
        ("value", "note"),
        [(30, True), (74, True), (74.9, True), (75, False), (76, False), (150, False)],
    )
    def test_ferritin_known_notes_below_75(self, check, value, note):
        obs = ferritin(value)
        [finding] = check(z33_1(), obs)
        assert finding.variant == "ferritin-known"
        assert finding.suggestions == ()
        assert bool(finding.notes) is note
        assert f"Observation/{obs['id']}" in [d.source for d in finding.data]

    def test_ferritin_known_summary_names_the_value(self):
        card = render(b.findings(b.kidney_ok(), z33_1(), ferritin(40)))["pregnancy"]
        assert "40 ng/mL" in card["summary"]
        assert "suggestions" not in card

    def test_old_ferritin_is_ferritin_due(self, check):
        assert variants(check(z33_1(), ferritin(40, when=OLD))) == ["ferritin-due"]

    def test_labs_unavailable_gives_ferritin_due_without_suggestion(self):
        found = b.findings(z33_1(), ferritin(150), unavailable=frozenset({"labs"}))
        finding = found["pregnancy"]
        assert (finding.variant, finding.suggestions) == ("ferritin-due", ())
        assert any("could not be read" in note for note in finding.notes)


class TestIronBelowTargetInPregnancy:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [(30, "pregnancy"), (74, "pregnancy"), (74.9, "pregnancy"), (75, None), (80, None),
         (100, None), (101, None)],
    )  # fmt: skip
    def test_fires_below_75_only(self, value, expected):
        found = b.findings(b.kidney_ok(), z33_1(), ferritin(value), tsat(25))
        finding = found.get("iron-below-target")
        assert (finding.variant if finding else None) == expected

    def test_tsat_below_20_fires_the_pregnancy_variant(self):
        found = b.findings(b.kidney_ok(), z33_1(), ferritin(150), tsat(19))
        assert found["iron-below-target"].variant == "pregnancy"

    def test_same_ferritin_without_pregnancy_is_iv_only(self):
        found = b.findings(b.kidney_ok(), ferritin(90), tsat(25))
        assert found["iron-below-target"].variant == "iv-only"

    def test_pregnancy_card_offers_oral_iron_only(self):
        found = b.findings(b.kidney_ok(), z33_1(), ferritin(40), tsat(25))
        card = render(found)["iron-below-target"]
        [suggestion] = card["suggestions"]
        medications = [
            a["resource"]
            for a in suggestion["actions"]
            if a["resource"]["resourceType"] == "MedicationRequest"
        ]
        [iron] = medications
        assert iron["medicationCodeableConcept"]["coding"][0]["code"] == "310325"
        assert "intravenous" not in str(card["suggestions"]).lower()

    def test_positive_test_is_enough_for_the_pregnancy_target(self):
        found = b.findings(b.kidney_ok(), hcg(), ferritin(90), tsat(25))
        assert "iron-below-target" not in found


class TestDopamineAgonistInPregnancy:
    @pytest.mark.parametrize("evidence", [z33_1(), hcg()], ids=["condition", "positive-test"])
    def test_pregnancy_variant(self, evidence):
        found = b.findings(b.kidney_ok(), evidence, b.medication_request(code="746741"))
        assert found["dopamine-agonist-augmentation"].variant == "pregnancy"

    def test_default_variant_when_not_pregnant(self):
        found = b.findings(b.kidney_ok(), b.medication_request(code="746741"))
        assert found["dopamine-agonist-augmentation"].variant == "default"

    def test_default_variant_after_an_expired_pregnancy(self):
        old = z33_1(onset="2025-01-01")
        found = b.findings(b.kidney_ok(), old, b.medication_request(code="746741"))
        assert found["dopamine-agonist-augmentation"].variant == "default"

    def test_pregnancy_card_does_not_point_to_alpha_2_delta_ligands(self):
        found = b.findings(b.kidney_ok(), z33_1(), b.medication_request(text="ropinirole 1 mg"))
        card = render(found)["dopamine-agonist-augmentation"]
        assert "obstetric" in card["summary"].lower()
        assert "alpha-2-delta" not in card["detail"]


DOPAMINERGIC_OR_GABAPENTINOID = ("dopamine-agonist", "gabapentin", "pregabalin",
                                 "gabapentin-enacarbil")  # fmt: skip


def _names_a_discouraged_drug(resource: dict) -> bool:
    concept = resource.get("medicationCodeableConcept", {})
    texts = [concept.get("text"), *(c.get("display") for c in concept.get("coding", []))]
    for vs_id in DOPAMINERGIC_OR_GABAPENTINOID:
        value_set = b.KNOWLEDGE.value_sets[vs_id]
        if any(
            value_set.has_code(c.get("system"), c.get("code")) for c in concept.get("coding", [])
        ):
            return True
        if any(value_set.names_in(t) for t in texts if t):
            return True
    return False


def _pregnant_chart() -> dict:
    """A pregnant RLS patient with every drug class, low iron and reduced kidney function."""
    gabapentin = b.medication_request(code="310431", text="gabapentin 300 MG Oral Capsule")
    gabapentin["dosageInstruction"] = [{"text": "600 mg three times daily"}]
    pregabalin = b.medication_request(text="pregabalin 200 MG Oral Capsule")
    pregabalin["dosageInstruction"] = [
        {
            "doseAndRate": [
                {"doseQuantity": {"value": 200, "unit": "mg", "system": UCUM, "code": "mg"}}
            ],
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
        }
    ]
    return b.findings(
        z33_1(),
        b.observation(b.EGFR, 40, "mL/min/{1.73_m2}"),
        ferritin(40),
        tsat(15),
        b.medication_request(code="746741", text="pramipexole 0.25 mg"),
        b.medication_request(code="3498", text="diphenhydramine 25 mg"),
        b.medication_request(code="6915", text="metoclopramide 10 mg"),
        b.medication_request(code="36437", text="sertraline 50 mg"),
        b.medication_request(code="51272", text="quetiapine 25 mg"),
        gabapentin,
        pregabalin,
        b.condition(b.coding(ICD10CM, "G62.9", "Polyneuropathy, unspecified")),
        b.condition(b.coding(ICD10CM, "I87.2", "Venous insufficiency")),
    )


def _suggested_medication_requests(cards: dict, action_type: str) -> list[tuple[str, dict]]:
    return [
        (topic, action["resource"])
        for topic, card in cards.items()
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if action["type"] == action_type
        and action.get("resource", {}).get("resourceType") == "MedicationRequest"
    ]


class TestNoDopaminergicOrGabapentinoidSuggestionInPregnancy:
    def test_the_chart_fires_the_expected_topics(self):
        found = _pregnant_chart()
        assert {
            "pregnancy",
            "iron-below-target",
            "dopamine-agonist-augmentation",
            "sedating-antihistamine",
            "dopamine-antagonist-antiemetic",
        } <= set(found)
        assert found["pregnancy"].variant == "ferritin-known"
        assert found["iron-below-target"].variant == "pregnancy"

    def test_no_new_order_for_a_dopaminergic_drug_or_gabapentinoid(self):
        cards = render(_pregnant_chart())
        created = _suggested_medication_requests(cards, "create")
        assert created, "the chart should produce some create suggestions"
        assert [(t, r["medicationCodeableConcept"]) for t, r in created
                if _names_a_discouraged_drug(r)] == []  # fmt: skip

    def test_no_updated_order_keeps_a_gabapentinoid_going_in_pregnancy(self):
        """The pregnancy card says gabapentinoids are not advised in pregnancy; a one-click
        'reduce to 700 mg twice daily' would re-prescribe one."""
        cards = render(_pregnant_chart())
        updated = _suggested_medication_requests(cards, "update")
        assert [(t, r["medicationCodeableConcept"]) for t, r in updated
                if _names_a_discouraged_drug(r)] == []  # fmt: skip


def test_ferritin_is_offered_once_in_pregnancy():
    """One card per action: the pregnancy card carries the ferritin order and iron-studies-due
    does not fire beside it (docs/card-topics.md, "Card text")."""
    pregnant = b.condition(b.coding(b.SNOMED, "77386006"), onset="2026-06-01")
    found = b.findings(pregnant, b.kidney_ok())
    cards = {
        card["source"]["topic"]["code"]: card
        for card in CardRenderer(b.KNOWLEDGE).render(found.values(), b.PATIENT_ID, b.NOW)
    }
    assert "iron-studies-due" not in cards
    assert len(cards["pregnancy"]["suggestions"]) == 1


def test_iron_studies_due_still_fires_when_not_pregnant():
    assert "iron-studies-due" in b.findings(b.kidney_ok())
