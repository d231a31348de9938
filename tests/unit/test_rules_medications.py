"""Drug-class topics: sedating-antihistamine, serotonergic-antidepressant, antipsychotic,
dopamine-antagonist-antiemetic and dopamine-agonist-augmentation, by every way a drug can
be named (RxNorm ingredient or product code, text, contained or referenced Medication)."""

from __future__ import annotations

import pytest

from cds_service.cards import CardRenderer
from cds_service.clinical.picture import build_picture
from cds_service.clinical.rules import medications as rules
from tests import builders as b
from tests.builders import RXNORM

RENDERER = CardRenderer(b.KNOWLEDGE)
LORATADINE = "311372"
FEXOFENADINE = "997420"
ONDANSETRON = "198052"


def request(code: str | None = None, text: str | None = None, status: str = "active") -> dict:
    return b.medication_request(code=code, text=text, status=status)


def statement(code=None, text=None, status="active", end=None) -> dict:
    return b.medication_statement(code=code, text=text, status=status, end=end)


def with_contained(text: str, code: str | None = None, kind: str = "request") -> dict:
    """A request (or statement) naming its drug through a contained Medication."""
    resource = request() if kind == "request" else statement()
    del resource["medicationCodeableConcept"]
    resource["contained"] = [b.medication("med1", text, code)]
    resource["medicationReference"] = {"reference": "#med1"}
    return resource


def with_reference(medication_id: str) -> dict:
    resource = request()
    del resource["medicationCodeableConcept"]
    resource["medicationReference"] = {"reference": f"Medication/{medication_id}"}
    return resource


def findings_with_prefetch_medication(*resources: dict, medication: dict) -> dict:
    """Findings when the referenced Medication arrives in the prefetch, as its own entry."""
    prefetch = b.prefetch(b.rls(), b.kidney_ok(), *resources)
    prefetch["medications"] = b.searchset(medication)
    picture = build_picture(prefetch, b.PATIENT_ID, b.NOW, b.KNOWLEDGE.value_sets)
    return {f.topic: f for f in b.ENGINE.patient_view(picture)}


make_check = b.engine_and_rule


IDS = ["engine", "rule"]


@pytest.fixture(params=make_check("sedating-antihistamine", rules.sedating_antihistamine), ids=IDS)
def antihistamine(request):
    return request.param


@pytest.fixture(
    params=make_check("serotonergic-antidepressant", rules.serotonergic_antidepressant), ids=IDS
)
def antidepressant(request):
    return request.param


@pytest.fixture(params=make_check("antipsychotic", rules.antipsychotic), ids=IDS)
def antipsychotic(request):
    return request.param


@pytest.fixture(
    params=make_check("dopamine-antagonist-antiemetic", rules.dopamine_antagonist_antiemetic),
    ids=IDS,
)
def antiemetic(request):
    return request.param


@pytest.fixture(
    params=make_check("dopamine-agonist-augmentation", rules.dopamine_agonist_augmentation),
    ids=IDS,
)
def agonist(request):
    return request.param


render = b.cards_by_topic


def topics_for(*resources: dict) -> set[str]:
    return set(b.findings(b.kidney_ok(), *resources))


DRUG_TOPICS = {
    "sedating-antihistamine",
    "serotonergic-antidepressant",
    "antipsychotic",
    "dopamine-antagonist-antiemetic",
    "dopamine-agonist-augmentation",
}


def label(resource: dict) -> str:
    concept = resource.get("medicationCodeableConcept") or {}
    return concept.get("text") or (concept.get("coding") or [{}])[0].get("code") or "ref"


# --- sedating-antihistamine -------------------------------------------------------------


class TestSedatingAntihistamineMatching:
    @pytest.mark.parametrize(
        "med",
        [
            request(code="3498"),  # diphenhydramine ingredient
            request(code="5553"),  # hydroxyzine ingredient
            request(code="3642"),  # doxylamine
            request(code="2400"),  # chlorpheniramine
            request(code="8745"),  # promethazine
            request(code="1049630"),  # diphenhydramine hydrochloride 25 MG Oral Tablet
            request(code="995258"),  # hydroxyzine hydrochloride 25 MG Oral Tablet
            request(code="1049910"),  # Benadryl 25 MG capsule (SBD)
            request(code="1101448"),  # Unisom (SBD)
            request(text="Benadryl"),
            request(text="Diphenhydramine HCl 25 mg"),
            request(text="diphenhydrAMINE 50 mg capsule"),
            request(text="Tylenol PM"),
            request(text="hydrOXYzine pamoate 25 mg"),
            request(text="Vistaril 25 mg"),
            request(text="ZzzQuil"),
            request(text="meclizine 25 mg"),
            request(text="Phenergan 25 mg"),
        ],
        ids=label,
    )
    def test_fires(self, antihistamine, med):
        [finding] = antihistamine(med)
        assert finding.variant == "default"
        assert [t.reference for t in finding.targets] == [f"MedicationRequest/{med['id']}"]

    @pytest.mark.parametrize(
        "code_system", [RXNORM, "urn:oid:2.16.840.1.113883.6.88", RXNORM + "/"]
    )
    def test_rxnorm_system_spellings(self, antihistamine, code_system):
        med = request()
        med["medicationCodeableConcept"] = {"coding": [b.coding(code_system, "3498")]}
        assert len(antihistamine(med)) == 1

    def test_rxnorm_code_under_another_system_does_not_fire(self, antihistamine):
        med = request()
        med["medicationCodeableConcept"] = {"coding": [b.coding(b.SNOMED, "3498")]}
        assert antihistamine(med) == []

    def test_display_only_fires(self, antihistamine):
        med = request()
        med["medicationCodeableConcept"] = {
            "coding": [b.coding("urn:local:formulary", "X1", "Diphenhydramine 25 mg capsule")]
        }
        assert len(antihistamine(med)) == 1

    @pytest.mark.parametrize(
        "med",
        [
            request(code=LORATADINE),
            request(code=FEXOFENADINE),
            request(text="Loratadine 10 mg oral tablet"),
            request(text="fexofenadine hydrochloride 180 MG Oral Tablet"),
            request(text="cetirizine 10 mg tablet"),
            request(text="levocetirizine 5 mg"),
            request(text="desloratadine 5 mg"),
            request(text="Claritin"),
            request(text="Allegra 180 mg"),
            request(text="Zyrtec"),
            request(text="Tylenol Extra Strength"),
            request(text="Antihistamine for allergy"),
        ],
        ids=label,
    )
    def test_non_sedating_never_fires(self, antihistamine, med):
        assert antihistamine(med) == []

    def test_contained_medication(self, antihistamine):
        med = with_contained("Diphenhydramine HCl 25 mg", "1049630")
        [finding] = antihistamine(med)
        assert finding.values["medications"] == "Diphenhydramine HCl 25 mg"

    def test_contained_medication_by_code_only(self, antihistamine):
        med = with_contained("", "3498")
        med["contained"][0]["code"] = {"coding": [b.coding(RXNORM, "3498")]}
        assert len(antihistamine(med)) == 1

    def test_contained_medication_in_a_statement(self, antihistamine):
        assert len(antihistamine(with_contained("Benadryl", kind="statement"))) == 1

    def test_contained_non_sedating_does_not_fire(self, antihistamine):
        assert antihistamine(with_contained("Loratadine 10 mg", LORATADINE)) == []

    def test_wrong_contained_id_does_not_fire(self, antihistamine):
        med = with_contained("Benadryl")
        med["medicationReference"] = {"reference": "#other"}
        assert antihistamine(med) == []

    def test_medication_referenced_in_the_prefetch(self):
        med = with_reference("benadryl-1")
        found = findings_with_prefetch_medication(
            med, medication=b.medication("benadryl-1", "Diphenhydramine 25 mg", "1049630")
        )
        finding = found["sedating-antihistamine"]
        assert [t.reference for t in finding.targets] == [f"MedicationRequest/{med['id']}"]

    def test_referenced_non_sedating_medication_does_not_fire(self):
        found = findings_with_prefetch_medication(
            with_reference("lora"), medication=b.medication("lora", "Loratadine", LORATADINE)
        )
        assert "sedating-antihistamine" not in found

    def test_unresolved_reference_does_not_fire(self, antihistamine):
        assert antihistamine(with_reference("missing")) == []

    def test_another_patients_order_is_ignored(self):
        other = b.medication_request(code="3498", patient_id="someone-else")
        assert "sedating-antihistamine" not in topics_for(other)


class TestMedicationStatuses:
    @pytest.mark.parametrize("status", ["active", "on-hold"])
    def test_active_requests_count(self, antihistamine, status):
        assert len(antihistamine(request(code="3498", status=status))) == 1

    @pytest.mark.parametrize(
        "status", ["stopped", "completed", "cancelled", "entered-in-error", "draft", "unknown"]
    )
    def test_inactive_requests_never_count(self, antihistamine, status):
        assert antihistamine(request(code="3498", status=status)) == []

    @pytest.mark.parametrize("status", ["active", "intended", "unknown"])
    def test_active_statements_count(self, antihistamine, status):
        assert len(antihistamine(statement(code="3498", status=status))) == 1

    @pytest.mark.parametrize(
        "status", ["stopped", "completed", "entered-in-error", "not-taken", "on-hold"]
    )
    def test_inactive_statements_never_count(self, antihistamine, status):
        assert antihistamine(statement(code="3498", status=status)) == []

    def test_unknown_statement_with_an_end_date_does_not_count(self, antihistamine):
        assert antihistamine(statement(code="3498", status="unknown", end="2026-03-01")) == []

    @pytest.mark.parametrize("status", ["stopped", "completed", "cancelled", "entered-in-error"])
    def test_inactive_status_never_fires_any_drug_topic(self, status):
        meds = [
            request(code="3498", status=status),
            request(code="36437", status=status),
            request(code="51272", status=status),
            request(code="6915", status=status),
            request(code="746741", status=status),
            statement(code="3498", status=status if status != "cancelled" else "stopped"),
        ]
        assert topics_for(*meds) & DRUG_TOPICS == set()

    def test_medications_unavailable_silences_drug_topics(self):
        found = b.findings(
            b.kidney_ok(), request(code="3498"), unavailable=frozenset({"medications"})
        )
        assert set(found) & DRUG_TOPICS == set()


#: An allergic indication on the problem list: the replacement is offered only then.
ALLERGY = b.condition(b.coding(b.ICD10CM, "J30.9", "Allergic rhinitis, unspecified"))


class TestSedatingAntihistamineCard:
    def test_two_culprits_make_one_card_naming_both(self, antihistamine):
        first, second = request(text="Benadryl 25 mg"), request(text="hydroxyzine 25 mg")
        [finding] = antihistamine(first, second)
        assert finding.values["medications"] == "Benadryl 25 mg and hydroxyzine 25 mg"
        assert [t.reference for t in finding.targets] == [
            f"MedicationRequest/{first['id']}",
            f"MedicationRequest/{second['id']}",
        ]
        assert finding.notes == ()

    def test_rendered_card_deletes_each_order_and_creates_loratadine(self):
        first, second = request(text="Benadryl 25 mg"), request(text="hydroxyzine 25 mg")
        cards = render(b.findings(b.kidney_ok(), ALLERGY, first, second))
        card = cards["sedating-antihistamine"]
        assert card["indicator"] == "warning"
        assert "Benadryl 25 mg and hydroxyzine 25 mg" in card["summary"]
        suggestions = card["suggestions"]
        assert not [s for s in suggestions if s.get("isRecommended")]  # nothing pre-selected
        actions = suggestions[0]["actions"]
        deletes = [a for a in actions if a["type"] == "delete"]
        assert [a["resourceId"] for a in deletes] == [
            f"MedicationRequest/{first['id']}",
            f"MedicationRequest/{second['id']}",
        ]
        [create] = [a for a in actions if a["type"] == "create"]
        resource = create["resource"]
        assert resource["resourceType"] == "MedicationRequest"
        assert resource["status"] == "draft"
        assert resource["medicationCodeableConcept"]["coding"][0]["code"] == LORATADINE
        assert resource["subject"] == {"reference": f"Patient/{b.PATIENT_ID}"}

    def test_every_suggestion_deletes_both_orders(self):
        first, second = request(code="3498"), request(code="5553")
        card = render(b.findings(b.kidney_ok(), ALLERGY, first, second))["sedating-antihistamine"]
        assert len(card["suggestions"]) == 3
        for suggestion in card["suggestions"]:
            deleted = [a["resourceId"] for a in suggestion["actions"] if a["type"] == "delete"]
            assert deleted == [
                f"MedicationRequest/{first['id']}",
                f"MedicationRequest/{second['id']}",
            ]

    def test_fexofenadine_alternative_is_offered(self):
        found = b.findings(b.kidney_ok(), ALLERGY, request(code="3498"))
        card = render(found)["sedating-antihistamine"]
        created = [
            a["resource"]["medicationCodeableConcept"]["coding"][0]["code"]
            for s in card["suggestions"]
            for a in s["actions"]
            if a["type"] == "create"
        ]
        assert created == [LORATADINE, FEXOFENADINE]

    def test_statement_only_culprit_gets_a_note_and_no_delete(self, antihistamine):
        [finding] = antihistamine(statement(text="Tylenol PM"))
        assert finding.targets == ()
        assert len(finding.notes) == 1
        assert "Tylenol PM" in finding.notes[0]
        assert "recorded as taken by the patient" in finding.notes[0]

    def test_statement_only_card_has_no_delete_action(self):
        card = render(b.findings(b.kidney_ok(), statement(text="Tylenol PM")))[
            "sedating-antihistamine"
        ]
        actions = [a for s in card.get("suggestions", []) for a in s["actions"]]
        assert [a for a in actions if a["type"] == "delete"] == []
        assert "recorded as taken by the patient" in card["detail"]

    def test_request_and_statement_delete_only_the_request(self, antihistamine):
        order, reported = request(code="3498"), statement(text="Unisom")
        [finding] = antihistamine(order, reported)
        assert [t.reference for t in finding.targets] == [f"MedicationRequest/{order['id']}"]
        assert len(finding.notes) == 1
        assert "Unisom" in finding.notes[0]

    def test_data_list_every_culprit(self, antihistamine):
        order, reported = request(code="3498", text="Benadryl"), statement(text="Unisom")
        [finding] = antihistamine(order, reported)
        assert [(d.label, d.source) for d in finding.data] == [
            ("Medication order", f"MedicationRequest/{order['id']}"),
            ("Medication reported", f"MedicationStatement/{reported['id']}"),
        ]


# --- serotonergic-antidepressant --------------------------------------------------------


class TestSerotonergicAntidepressant:
    @pytest.mark.parametrize(
        "med",
        [
            request(code="36437"),  # sertraline
            request(code="15996"),  # mirtazapine
            request(code="704"),  # amitriptyline
            request(code="72625"),  # duloxetine
            request(code="312941"),  # sertraline 50 MG Oral Tablet
            request(code="311725"),  # mirtazapine 15 MG Oral Tablet
            request(code="596930"),  # duloxetine 30 MG DR capsule
            request(text="Sertraline 50 mg"),
            request(text="Zoloft"),
            request(text="Remeron 15 mg"),
            request(text="amitriptyline 10 mg at bedtime"),
            request(text="Cymbalta 60 mg"),
            request(text="levomilnacipran ER 40 mg"),
            statement(text="escitalopram 10 mg"),
        ],
        ids=label,
    )
    def test_fires(self, antidepressant, med):
        [finding] = antidepressant(med)
        assert finding.variant == "default"

    @pytest.mark.parametrize(
        "med",
        [
            request(text="buPROPion XL 150 mg"),
            request(text="bupropion hydrochloride 150 MG Extended Release Oral Tablet"),
            request(text="Wellbutrin XL"),
            request(text="Wellbutrin SR 150 mg"),
            request(text="Zyban"),
            request(text="Aplenzin"),
            request(text="Trazodone 50 mg"),
        ],
        ids=label,
    )
    def test_bupropion_and_others_never_fire(self, antidepressant, med):
        assert antidepressant(med) == []

    def test_bupropion_fires_no_topic_at_all(self):
        assert topics_for(request(text="buPROPion XL 150 mg")) & DRUG_TOPICS == set()

    def test_card_is_info_without_suggestions(self):
        card = render(b.findings(b.kidney_ok(), request(code="15996")))[
            "serotonergic-antidepressant"
        ]
        assert card["indicator"] == "info"
        assert "suggestions" not in card

    def test_several_antidepressants_one_card(self, antidepressant):
        [finding] = antidepressant(request(text="sertraline"), request(text="mirtazapine"))
        assert finding.values["medications"] == "sertraline and mirtazapine"

    def test_olanzapine_fluoxetine_fires_both_classes(self):
        found = topics_for(request(code="403970"))
        assert {"serotonergic-antidepressant", "antipsychotic"} <= found


# --- antipsychotic ----------------------------------------------------------------------


class TestAntipsychotic:
    @pytest.mark.parametrize(
        "med",
        [
            request(code="51272"),  # quetiapine
            request(code="5093"),  # haloperidol
            request(code="312744"),  # quetiapine 25 MG Oral Tablet
            request(code="310672"),  # haloperidol 5 MG Oral Tablet
            request(code="61381"),  # olanzapine
            request(code="35636"),  # risperidone
            request(text="Seroquel 25 mg at night"),
            request(text="Haldol"),
            request(text="aripiprazole 5 mg"),
            statement(text="quetiapine 50 mg"),
        ],
        ids=label,
    )
    def test_fires(self, antipsychotic, med):
        [finding] = antipsychotic(med)
        assert finding.variant == "default"

    @pytest.mark.parametrize(
        "med",
        [request(text="pimavanserin 34 MG Oral Capsule"), request(text="Nuplazid 34 mg")],
        ids=label,
    )
    def test_pimavanserin_never_fires(self, antipsychotic, med):
        assert antipsychotic(med) == []

    def test_card_has_no_suggestions(self):
        card = render(b.findings(b.kidney_ok(), request(code="5093")))["antipsychotic"]
        assert card["indicator"] == "info"
        assert "suggestions" not in card


# --- dopamine-antagonist-antiemetic -----------------------------------------------------


class TestDopamineAntagonistAntiemetic:
    @pytest.mark.parametrize(
        "med",
        [
            request(code="6915"),  # metoclopramide
            request(code="8704"),  # prochlorperazine
            request(code="311666"),  # metoclopramide 10 MG Oral Tablet
            request(code="198365"),  # prochlorperazine 10 MG Oral Tablet
            request(text="Reglan 10 mg"),
            request(text="Compazine 10 mg"),
            request(text="metoclopramide 10 mg before meals"),
            statement(text="prochlorperazine 5 mg"),
        ],
        ids=label,
    )
    def test_fires(self, antiemetic, med):
        [finding] = antiemetic(med)
        assert finding.variant == "default"

    @pytest.mark.parametrize(
        "med",
        [
            request(code=ONDANSETRON),
            request(text="ondansetron 4 mg"),
            request(text="Zofran"),
            request(code="8745"),  # promethazine
            request(text="promethazine 25 mg"),
        ],
        ids=label,
    )
    def test_does_not_fire(self, antiemetic, med):
        assert antiemetic(med) == []

    @pytest.mark.parametrize("med", [request(code="8745"), request(text="Phenergan")], ids=label)
    def test_promethazine_fires_sedating_antihistamine_only(self, med):
        topics = topics_for(med) & DRUG_TOPICS
        assert topics == {"sedating-antihistamine"}

    def test_ondansetron_fires_nothing(self):
        assert topics_for(request(code=ONDANSETRON, text="ondansetron 4 mg")) & DRUG_TOPICS == set()

    def test_card_replaces_with_ondansetron(self):
        med = request(code="6915", text="metoclopramide 10 mg")
        card = render(b.findings(b.kidney_ok(), med))["dopamine-antagonist-antiemetic"]
        assert card["indicator"] == "warning"
        [recommended] = [s for s in card["suggestions"] if s.get("isRecommended")]
        [delete] = [a for a in recommended["actions"] if a["type"] == "delete"]
        assert delete["resourceId"] == f"MedicationRequest/{med['id']}"
        [create] = [a for a in recommended["actions"] if a["type"] == "create"]
        coding = create["resource"]["medicationCodeableConcept"]["coding"][0]
        assert (coding["system"], coding["code"]) == (RXNORM, ONDANSETRON)

    def test_statement_only_antiemetic_has_no_delete(self):
        card = render(b.findings(b.kidney_ok(), statement(text="Reglan")))[
            "dopamine-antagonist-antiemetic"
        ]
        actions = [a for s in card.get("suggestions", []) for a in s["actions"]]
        assert [a for a in actions if a["type"] == "delete"] == []


# --- dopamine-agonist-augmentation ------------------------------------------------------


class TestDopamineAgonistAugmentation:
    @pytest.mark.parametrize(
        "med",
        [
            request(code="746741"),  # pramipexole
            request(code="72302"),  # ropinirole
            request(code="6375"),  # levodopa
            request(code="859040"),  # pramipexole 0.25 MG Oral Tablet
            request(code="312846"),  # ropinirole 0.5 MG Oral Tablet
            request(code="197444"),  # carbidopa 25 MG / levodopa 100 MG Oral Tablet
            request(text="Neupro 2 mg/24 hr patch"),
            request(text="rotigotine 1 mg/24 hr transdermal"),
            request(text="carbidopa-levodopa 25-100 mg"),
            request(text="Sinemet 25/100"),
            request(text="Mirapex 0.125 mg"),
            statement(text="Requip 0.25 mg"),
        ],
        ids=label,
    )
    def test_fires(self, agonist, med):
        [finding] = agonist(med)
        assert finding.variant == "default"

    @pytest.mark.parametrize(
        "med",
        [
            request(text="carbidopa 25 MG Oral Tablet"),
            request(text="Lodosyn 25 mg"),
            request(text="entacapone 200 mg"),
            request(text="amantadine 100 mg"),
        ],
        ids=label,
    )
    def test_does_not_fire(self, agonist, med):
        assert agonist(med) == []

    def test_card_is_info_without_suggestions(self):
        card = render(b.findings(b.kidney_ok(), request(code="746741")))[
            "dopamine-agonist-augmentation"
        ]
        assert card["indicator"] == "info"
        assert "suggestions" not in card
        assert "alpha-2-delta" in card["summary"]

    def test_two_agonists_one_card(self, agonist):
        [finding] = agonist(request(text="pramipexole"), statement(text="Sinemet"))
        assert finding.values["medications"] == "pramipexole and Sinemet"
        assert len(finding.targets) == 1
        assert len(finding.notes) == 1


def test_one_card_per_class_with_every_class_active():
    meds = [
        request(code="3498"),
        request(code="5553"),
        request(code="36437"),
        request(code="15996"),
        request(code="51272"),
        request(code="6915"),
        request(code="746741"),
    ]
    cards = RENDERER.render(
        b.ENGINE.patient_view(b.picture(b.rls(), b.kidney_ok(), *meds)), b.PATIENT_ID, b.NOW
    )
    codes = [c["source"]["topic"]["code"] for c in cards]
    assert sorted(set(codes) & DRUG_TOPICS) == sorted(DRUG_TOPICS)
    assert len(codes) == len(set(codes))
    # warnings first, then by contract order
    indicators = [c["indicator"] for c in cards]
    assert indicators == sorted(indicators, key={"critical": 0, "warning": 1, "info": 2}.get)
