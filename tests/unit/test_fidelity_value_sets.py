"""Value-set completeness, Unicode normalisation and the Parkinson disease variant
(docs/card-topics.md, "Value-set completeness" and "Dopaminergic drugs with Parkinson
disease"), through the engine and the rendered cards."""

from __future__ import annotations

import json

import pytest

from cds_service.clinical.text import normalise
from tests import builders as b
from tests.builders import ICD10CM, SNOMED

LEVODOPA = "carbidopa 25 MG / levodopa 100 MG Oral Tablet"


def topics(*resources: dict) -> set[str]:
    return set(b.findings(b.kidney_ok(), *resources))


def icd(code: str, display: str = "x", **kwargs) -> dict:
    return b.condition(b.coding(ICD10CM, code, display), **kwargs)


class TestPeripheralArterialDisease:
    @pytest.mark.parametrize("code", ["E10.51", "E10.52", "E11.51", "E11.52", "E13.51", "E13.52"])
    def test_diabetic_peripheral_angiopathy_is_pad(self, code):
        assert "peripheral-arterial-disease" in topics(icd(code))

    @pytest.mark.parametrize("code", ["E11.59", "E11.5", "E11.9", "E11.40"])
    def test_other_diabetic_codes_are_not(self, code):
        assert "peripheral-arterial-disease" not in topics(icd(code))

    def test_by_text(self):
        found = topics(b.condition(text="Type 2 diabetes with diabetic peripheral angiopathy"))
        assert "peripheral-arterial-disease" in found


class TestSerotonergic:
    @pytest.mark.parametrize(
        "name", ["vilazodone 20 MG Oral Tablet", "Viibryd", "vortioxetine 10 MG", "Trintellix"]
    )
    def test_vilazodone_and_vortioxetine_are_serotonergic(self, name):
        assert "serotonergic-antidepressant" in topics(b.medication_request(text=name))

    def test_trazodone_stays_out(self):
        assert "serotonergic-antidepressant" not in topics(b.medication_request(text="trazodone"))


class TestUnicode:
    @pytest.mark.parametrize(
        "name",
        [
            "ser\u200btraline 50 MG Oral Tablet",  # zero-width space
            "ser\u00adtraline",  # soft hyphen
            "ｓｅｒｔｒａｌｉｎｅ",  # fullwidth letters
            "se\u0301rtraline",  # combining acute accent
            "s\u200de\u2060rtraline",  # zero-width joiner, word joiner
        ],
    )
    def test_a_disguised_drug_name_is_still_the_drug(self, name):
        assert "serotonergic-antidepressant" in topics(b.medication_request(text=name))

    @pytest.mark.parametrize(
        "text",
        [
            "Peripheral arte\u200brial disease",
            "ＰＥＲＩＰＨＥＲＡＬ ＡＲＴＥＲＩＡＬ ＤＩＳＥＡＳＥ",
        ],
    )
    def test_a_disguised_condition_name_is_still_the_condition(self, text):
        assert "peripheral-arterial-disease" in topics(b.condition(text=text))

    def test_rls_itself_cannot_hide(self):
        found = b.findings(b.condition(text="Restless\u200b legs syndrome"), b.kidney_ok())
        assert "iron-studies-due" in found

    def test_the_card_shows_the_name_as_recorded(self):
        name = "ser\u200btraline 50 MG"
        card = b.cards_by_topic(b.findings(b.kidney_ok(), b.medication_request(text=name)))
        assert "ser\u200btraline" in card["serotonergic-antidepressant"]["summary"]

    def test_normalise(self):
        assert normalise("ｇａｂａ\u200bpe\u0301ntin") == "gabapentin"
        assert normalise("plain ascii") == "plain ascii"


class TestParkinson:
    @pytest.mark.parametrize(
        "problem",
        [
            icd("G20", "Parkinson's disease"),
            icd("G20.A1", "Parkinson's disease without dyskinesia"),
            icd("G20.C", "Parkinsonism, unspecified"),
            b.condition(b.coding(SNOMED, "49049000", "Parkinson's disease")),
            b.condition(text="Familial Parkinson disease"),
            b.condition(text="Parkinson\u2019s disease"),
        ],
        ids=["G20", "G20.A1", "G20.C", "snomed", "descendant-text", "curly-apostrophe"],
    )
    def test_parkinson_variant_never_offers_an_alpha_2_delta_ligand_or_a_taper(self, problem):
        found = b.findings(b.kidney_ok(), problem, b.medication_request(text=LEVODOPA))
        finding = found["dopamine-agonist-augmentation"]
        assert finding.variant == "parkinson"
        card = b.cards_by_topic(found)["dopamine-agonist-augmentation"]
        text = json.dumps(card).lower()
        assert "alpha-2-delta" not in text and "gabapentin" not in text
        assert "do not stop, taper or switch" in card["detail"]
        assert "neurolog" in card["detail"]
        assert "suggestions" not in card

    def test_secondary_parkinsonism_is_not_parkinson_disease(self):
        found = b.findings(
            b.kidney_ok(), icd("G21.11", "Neuroleptic induced parkinsonism"),
            b.medication_request(text=LEVODOPA),
        )  # fmt: skip
        assert found["dopamine-agonist-augmentation"].variant == "default"

    def test_resolved_parkinson_entry_does_not_count(self):
        found = b.findings(
            b.kidney_ok(), icd("G20", clinical="resolved"), b.medication_request(text=LEVODOPA)
        )
        assert found["dopamine-agonist-augmentation"].variant == "default"

    @pytest.mark.parametrize("name", ["cabergoline 0.5 MG Oral Tablet", "Dostinex",
        "bromocriptine 2.5 MG Oral Tablet", "Parlodel", "Cycloset"])  # fmt: skip
    def test_cabergoline_and_bromocriptine_are_dopamine_agonists(self, name):
        assert "dopamine-agonist-augmentation" in topics(b.medication_request(text=name))

    def test_without_parkinson_the_card_still_suggests_an_alpha_2_delta_ligand(self):
        card = b.cards_by_topic(b.findings(b.kidney_ok(), b.medication_request(text=LEVODOPA)))
        assert "alpha-2-delta" in card["dopamine-agonist-augmentation"]["summary"]

    def test_parkinson_wins_over_pregnancy(self):
        pregnant = b.condition(b.coding(ICD10CM, "Z33.1", "Pregnant state, incidental"))
        found = b.findings(b.kidney_ok(), icd("G20"), pregnant, b.medication_request(text=LEVODOPA))
        assert found["dopamine-agonist-augmentation"].variant == "parkinson"
