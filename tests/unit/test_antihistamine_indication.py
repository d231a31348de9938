"""sedating-antihistamine by indication (docs/card-topics.md, "Sedating antihistamines")."""

from __future__ import annotations

import pytest

from tests import builders as b
from tests.builders import ICD10CM, SNOMED

HYDROXYZINE = "hydroxyzine hydrochloride 25 MG Oral Tablet"
TOPIC = "sedating-antihistamine"


def icd(code: str, display: str = "x", **kwargs) -> dict:
    return b.condition(b.coding(ICD10CM, code, display), **kwargs)


def order(text: str = HYDROXYZINE, reason: dict | None = None, condition: dict | None = None):
    resource = b.medication_request(text=text)
    if reason is not None:
        resource["reasonCode"] = [reason]
    if condition is not None:
        resource["reasonReference"] = [{"reference": f"Condition/{condition['id']}"}]
    return resource


def concept(system: str, code: str, display: str) -> dict:
    return {"coding": [b.coding(system, code, display)]}


def card(*resources: dict) -> dict:
    return b.cards_by_topic(b.findings(b.kidney_ok(), *resources))[TOPIC]


def labels(found: dict) -> list[str]:
    return [s["label"] for s in found.get("suggestions", [])]


def replaced(found: dict) -> bool:
    return any("loratadine" in label for label in labels(found))


class TestReplacementOnlyForAllergy:
    def test_without_an_indication_only_stop_is_offered(self):
        found = card(order())
        assert labels(found) == ["Stop it without a replacement"]

    @pytest.mark.parametrize(
        "reason",
        [
            concept(ICD10CM, "J30.2", "Other seasonal allergic rhinitis"),
            concept(ICD10CM, "L50.9", "Urticaria, unspecified"),
            concept(SNOMED, "61582004", "Allergic rhinitis"),
            {"text": "Hay fever"},
            {"text": "pruritus of allergic origin"},
        ],
        ids=["J30.2", "L50.9", "snomed", "hay-fever-text", "allergic-pruritus"],
    )
    def test_allergic_reason_code_offers_the_replacement(self, reason):
        assert replaced(card(order(reason=reason)))

    def test_allergic_reason_reference_offers_the_replacement(self):
        rhinitis = icd("J30.9", "Allergic rhinitis, unspecified")
        assert replaced(card(rhinitis, order(condition=rhinitis)))

    def test_allergy_on_the_problem_list_offers_the_replacement(self):
        assert replaced(card(icd("J30.1", "Allergic rhinitis due to pollen"), order()))

    def test_vasomotor_rhinitis_is_not_allergic(self):
        assert not replaced(card(icd("J30.0", "Vasomotor rhinitis"), order()))

    def test_reason_on_the_order_wins_over_the_problem_list(self):
        """Hydroxyzine ordered for anxiety: hay fever on the list does not make it an allergy
        drug."""
        anxiety = concept(ICD10CM, "F41.1", "Generalized anxiety disorder")
        found = card(icd("J30.2", "Hay fever"), order(reason=anxiety))
        assert not replaced(found)
        assert "on record for anxiety" in found["detail"]

    def test_nothing_is_pre_selected(self):
        found = card(order(reason={"text": "allergic rhinitis"}))
        assert all(not s.get("isRecommended") for s in found["suggestions"])
        found = card(order())
        assert all(not s.get("isRecommended") for s in found["suggestions"])


class TestIndicationNamed:
    @pytest.mark.parametrize(
        ("drug", "problem", "phrase"),
        [
            (HYDROXYZINE, icd("F41.1", "Generalized anxiety disorder"), "for anxiety"),
            ("meclizine 25 MG Oral Tablet", icd("R42", "Dizziness and giddiness"), "for vertigo"),
            ("dimenhydrinate 50 MG Oral Tablet", icd("H81.10", "BPPV"), "for vertigo"),
            ("doxylamine succinate 10 MG / pyridoxine hydrochloride 10 MG Delayed Release Oral "
             "Tablet", icd("O21.0", "Mild hyperemesis gravidarum"),
             "for nausea and vomiting in pregnancy"),
            ("diphenhydramine 25 MG Oral Capsule", icd("G47.00", "Insomnia, unspecified"),
             "for insomnia"),
        ],
        ids=["hydroxyzine-anxiety", "meclizine-vertigo", "dimenhydrinate-vertigo",
             "diclegis-pregnancy", "diphenhydramine-insomnia"],
    )  # fmt: skip
    def test_the_indication_on_record_is_named(self, drug, problem, phrase):
        found = card(problem, order(text=drug))
        assert phrase in found["detail"]
        assert not replaced(found)

    def test_doxylamine_pyridoxine_in_a_pregnancy_is_named(self):
        pregnant = icd("Z34.02", "Supervision of normal first pregnancy, second trimester")
        found = card(pregnant, order(text="Diclegis 10 mg / 10 mg"))
        assert "nausea and vomiting in pregnancy" in found["detail"]

    def test_anxiety_is_not_named_for_an_antihistamine_not_given_for_it(self):
        found = card(icd("F41.1", "GAD"), order(text="diphenhydramine 25 MG Oral Capsule"))
        assert "anxiety" not in found["detail"]

    def test_a_drug_given_for_no_recorded_reason_names_nothing(self):
        assert "on record for" not in card(order())["detail"]
