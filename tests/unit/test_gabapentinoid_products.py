"""gabapentinoid-renal-dose by product (docs/card-topics.md, "Gabapentinoids"): each product
against its own label, the absolute maximum whatever the kidney function, comparator results,
the new dose in the suggestion's label and the card's source the drug's own label."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest

from tests import builders as b
from tests.unit.test_rules_kidney import (
    dialysis,
    dose_via_engine,
    dose_via_rule,
    egfr,
    order,
    structured,
)


@pytest.fixture(params=[dose_via_engine, dose_via_rule], ids=["engine", "rule"])
def dose(request):
    return request.param


GRALISE = "Gralise 600 MG Oral Tablet"
GRALISE_RXNORM = ("Once-Daily gabapentin 600 MG Oral Tablet", "1806382")
LYRICA_CR = "24 HR pregabalin 165 MG Extended Release Oral Tablet"
LYRICA_CR_EPIC = "pregabalin ER 165 mg tablet"
PREGABALIN_150 = "pregabalin 150 MG Oral Capsule"
PILL = {"value": 1, "system": "http://unitsofmeasure.org", "code": "{pill}"}


def pills(count: float, per_day: int) -> dict:
    """A dose as the CDS Hooks Sandbox writes it: a count of {pill}."""
    return {
        "doseAndRate": [{"doseQuantity": PILL | {"value": count}}],
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
    }


def card(*resources: dict) -> dict:
    return b.cards_by_topic(b.findings(*resources))["gabapentinoid-renal-dose"]


class TestGralise:
    @pytest.mark.parametrize("text, code", [(GRALISE, None), GRALISE_RXNORM])
    @pytest.mark.parametrize("clearance", [29.9, 20, 10])
    def test_not_below_crcl_30(self, dose, text, code, clearance):
        [finding] = dose(order(structured(600, 1), text=text, code=code), egfr(clearance))
        assert finding.variant == "not-recommended"
        assert finding.values["drug"] == "Gralise"

    @pytest.mark.parametrize("clearance", [30, 45, 60, 90])
    def test_1800_once_daily_is_within_its_label_at_30_and_above(self, dose, clearance):
        assert dose(order(structured(1800, 1), text=GRALISE, code=None), egfr(clearance)) == []

    def test_not_on_haemodialysis(self, dose):
        [finding] = dose(order(structured(600, 1), text=GRALISE, code=None), dialysis())
        assert finding.variant == "not-recommended"
        assert finding.values["kidney"] == "on dialysis"

    def test_above_its_own_maximum_at_normal_function(self, dose):
        """2400 mg/day is within Neurontin's 3600 but above Gralise's 1800."""
        [finding] = dose(order(structured(2400, 1), text=GRALISE, code=None), egfr(90))
        assert (finding.variant, finding.values["limit"]) == ("above-limit", "1800")

    def test_neurontin_at_the_same_clearance_is_not_cancelled(self, dose):
        found = dose(order(structured(200, 1)), egfr(25))
        assert found == []

    def test_card_cites_the_gralise_label(self):
        found = card(order(structured(600, 1), text=GRALISE, code=None), egfr(20))
        assert "Gralise" in found["source"]["label"]
        assert "466273b1" in found["source"]["url"]


class TestLyricaCr:
    @pytest.mark.parametrize("text", [LYRICA_CR, LYRICA_CR_EPIC, "Lyrica CR 165 MG"])
    def test_has_its_own_table(self, dose, text):
        """495 mg/day at CrCl 45: within immediate-release pregabalin's 300? No: above both,
        and judged against Lyrica CR's 330."""
        [finding] = dose(order(structured(495, 1), text=text, code=None), egfr(45))
        assert (finding.values["drug"], finding.values["limit"]) == ("Lyrica CR", "330")

    @pytest.mark.parametrize(("clearance", "daily", "fires"), [(60, 660, False),
        (60, 661, True), (59, 330, False), (59, 331, True), (30, 330, False)])  # fmt: skip
    def test_band_edges(self, dose, clearance, daily, fires):
        found = dose(order(structured(daily, 1), text=LYRICA_CR, code=None), egfr(clearance))
        assert bool(found) is fires

    @pytest.mark.parametrize("clearance", [29.9, 15, 5])
    def test_not_below_30_use_immediate_release(self, dose, clearance):
        [finding] = dose(order(structured(165, 1), text=LYRICA_CR, code=None), egfr(clearance))
        assert finding.variant == "not-recommended"
        assert "immediate-release pregabalin" in finding.values["instead"]

    def test_card_cites_the_lyrica_cr_label_not_neurontin(self):
        found = card(order(structured(495, 1), text=LYRICA_CR, code=None), egfr(45))
        assert "Lyrica CR" in found["source"]["label"]
        assert "Neurontin" not in str(found)


class TestAbsoluteMaximum:
    @pytest.mark.parametrize(
        ("text", "daily", "maximum"),
        [
            ("gabapentin 800 MG Oral Tablet", 4800, "3600"),
            (PREGABALIN_150, 900, "600"),
            ("Horizant 600 MG Extended Release Oral Tablet", 1800, "1200"),
            (GRALISE, 2400, "1800"),
            (LYRICA_CR, 990, "660"),
        ],
    )
    def test_fires_with_kidney_function_unknown(self, dose, text, daily, maximum):
        [finding] = dose(order(structured(daily, 1), text=text, code=None))
        assert (finding.variant, finding.values["limit"]) == ("above-maximum", maximum)
        assert finding.values["kidney"] == "with kidney function not known"

    @pytest.mark.parametrize("daily", [3600, 3599])
    def test_at_or_below_the_maximum_with_unknown_kidney_is_silent(self, dose, daily):
        assert dose(order(structured(daily, 1), text="gabapentin 800 MG Oral Tablet")) == []

    def test_with_a_comparator_egfr_the_top_row_decides(self, dose):
        """The issue's case: 4800 mg/day with eGFR '>60' (was 'kidney function unknown')."""
        [finding] = dose(order(structured(1600, 3)), egfr(60, comparator=">"))
        assert (finding.variant, finding.values["limit"]) == ("above-limit", "3600")
        assert finding.values["kidney"] == "at eGFR >60 mL/min/1.73 m2"

    @pytest.mark.parametrize(("value", "comparator", "limit"), [(90, ">", "3600"),
        (60, ">=", "3600"), (30, ">", "1400")])  # fmt: skip
    def test_comparator_places_the_patient_in_the_band_at_or_above(
        self, dose, value, comparator, limit
    ):
        [finding] = dose(order(structured(1600, 3)), egfr(value, comparator=comparator))
        assert finding.values["limit"] == limit

    def test_update_within_the_maximum_is_offered(self, dose):
        [finding] = dose(order(structured(1600, 3), text="gabapentin 800 MG Oral Tablet"))
        dosage = finding.targets[0].update["dosageInstruction"][0]
        assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 800
        assert finding.values["new_dose"] == "800 mg three times daily (2400 mg/day)"


class TestSandboxPills:
    def test_pregabalin_three_times_the_renal_limit_in_pills_is_read(self, dose):
        """The issue's case: {pill} doses gave 'dose not readable' instead of the card."""
        [finding] = dose(order(pills(1, 3), text=PREGABALIN_150, code="483440"), egfr(20))
        assert (finding.variant, finding.values["dose"], finding.values["limit"]) == (
            "above-limit",
            "450",
            "150",
        )


class TestSuggestionLabel:
    @pytest.mark.parametrize(
        ("resources", "label"),
        [
            ((order(structured(600, 3), text="pregabalin 75 MG Oral Capsule", code=None),
              egfr(45)), "Reduce to 150 mg twice daily (300 mg/day)"),
            ((order(structured(600, 3)), egfr(40)), "Reduce to 600 mg twice daily (1200 mg/day)"),
            ((order(structured(600, 3), text="gabapentin 100 MG Oral Capsule", code=None),
              egfr(7.5)), "Reduce to 100 mg once daily (100 mg/day)"),
            ((order(structured(600, 1), text="Horizant 300 MG Extended Release Oral Tablet",
                    code=None), egfr(10)), "Reduce to 300 mg every other day (150 mg/day)"),
        ],
    )  # fmt: skip
    def test_label_states_the_exact_new_dose(self, resources, label):
        [suggestion] = card(*resources)["suggestions"]
        assert suggestion["label"] == label

    def test_the_update_is_valid_fhir_even_for_a_sandbox_category_object(self):
        med = order(pills(2, 3), text=PREGABALIN_150, code="483440")
        med["category"] = {"coding": [{"code": "outpatient"}]}  # as the Sandbox sends it
        [suggestion] = card(med, egfr(45))["suggestions"]
        [action] = suggestion["actions"]
        MedicationRequest.model_validate(action["resource"])
        assert isinstance(action["resource"]["category"], list)


class TestKidneyPhrases:
    @pytest.mark.parametrize(
        ("resources", "summary"),
        [
            ((order(structured(600, 3)), dialysis()),
             "Gabapentin 1800 mg/day is above the label limit of 300 mg/day on dialysis"),
            ((order(structured(600, 3)), egfr(40)),
             "Gabapentin 1800 mg/day is above the label limit of 1400 mg/day at eGFR 40 "
             "mL/min/1.73 m2"),
        ],
    )  # fmt: skip
    def test_summary_reads_as_a_sentence(self, resources, summary):
        assert card(*resources)["summary"] == summary

    def test_evidence_links_appear_once(self):
        found = card(order(structured(600, 3)), egfr(40))
        assert "dailymed" not in found["detail"]
        urls = [found["source"]["url"], *(link["url"] for link in found.get("links", []))]
        assert len(urls) == len(set(urls))
