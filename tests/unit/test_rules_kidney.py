"""Kidney rules (renal-function-due, kidney-disease, gabapentinoid-renal-dose) at and around
every threshold, through the Engine (b.findings) and the rule functions directly."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest

from cds_service.clinical.rules import kidney
from tests import builders as b
from tests.builders import ICD10CM, SNOMED, UCUM

RECENT = "2026-10-15T08:00:00Z"
OLD = "2025-06-01T08:00:00Z"
EGFR_UNIT = "mL/min/{1.73_m2}"
DUE = b.params("renal-function-due")
CKD = b.params("kidney-disease")
DOSE = b.params("gabapentinoid-renal-dose")
CHECK_DOSE = kidney.GabapentinoidDose(b.KNOWLEDGE.dosing).check


# --- builders ---------------------------------------------------------------------------


def creatinine(value, unit="mg/dL", when=RECENT, code=b.CREATININE, **kwargs) -> dict:
    return b.observation(code, value, unit, when=when, **kwargs)


def egfr(value, when=RECENT, code=b.EGFR, **kwargs) -> dict:
    return b.observation(code, value, EGFR_UNIT, when=when, **kwargs)


def weight(value, unit="kg", when=RECENT) -> dict:
    return b.observation(b.WEIGHT, value, unit, when=when)


service_request = b.service_request


def condition(system: str, code: str, display: str | None = None, **kwargs) -> dict:
    return b.condition(b.coding(system, code, display), **kwargs)


def mg(value: float) -> dict:
    return {"value": value, "unit": "mg", "system": UCUM, "code": "mg"}


def structured(dose_mg: float, per_day: int) -> dict:
    return {
        "doseAndRate": [{"doseQuantity": mg(dose_mg)}],
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
    }


ORAL = {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]}
TID_STRUCTURED = structured(600, 3)
TID_TEXT = {"text": "600 mg three times daily"}
TID_CODE = {
    "doseAndRate": [{"doseQuantity": mg(600)}],
    "timing": {
        "code": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
                    "code": "TID",
                }
            ]
        }
    },
}
TID_CAPSULES = {
    "doseAndRate": [{"doseQuantity": {"value": 2, "unit": "capsule"}}],
    "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
}


def order(
    *dosages: dict,
    text: str = "gabapentin 300 MG Oral Capsule",
    code: str | None = "310431",
    kind: str = "request",
    status: str = "active",
) -> dict:
    """A gabapentinoid order (or statement) with the given dosage instructions."""
    if kind == "request":
        resource = b.medication_request(code=code, text=text, status=status)
        if dosages:
            resource["dosageInstruction"] = list(dosages)
    else:
        resource = b.medication_statement(code=code, text=text, status=status)
        if dosages:
            resource["dosage"] = list(dosages)
    return resource


def gabapentin_1800(**kwargs) -> dict:
    return order(TID_STRUCTURED, **kwargs)


def pregabalin(dose_mg: float, per_day: int = 2) -> dict:
    return order(structured(dose_mg, per_day), text="pregabalin 150 MG Oral Capsule", code="483440")


def horizant(dose_mg: float, per_day: int = 1, text="Horizant 600 MG Extended Release") -> dict:
    return order(structured(dose_mg, per_day), text=text, code=None)


def dialysis() -> dict:
    return condition(ICD10CM, "Z99.2", "Dependence on renal dialysis")


#: An active gabapentinoid with no readable dose: renal-function-due and kidney-disease
#: (eGFR 30 to 59, CKD 3) fire beside one only.
GABA = b.medication_statement(text="gabapentin")


def variant(found: dict, topic: str) -> str | None:
    finding = found.get(topic)
    return finding.variant if finding else None


render = b.cards_by_topic


# --- renal-function-due -----------------------------------------------------------------


def due_via_engine(*resources: dict, **kwargs) -> list:
    found = b.findings(*resources, **kwargs).get("renal-function-due")
    return [found] if found else []


def due_via_rule(*resources: dict, **kwargs) -> list:
    return kidney.renal_function_due(b.picture(b.rls(), *resources, **kwargs), DUE)


@pytest.fixture(params=[due_via_engine, due_via_rule], ids=["engine", "rule"])
def due(request):
    return request.param


class TestRenalFunctionDue:
    def test_never_when_no_creatinine_or_egfr_on_record(self, due):
        [finding] = due()
        assert (finding.variant, dict(finding.values), finding.notes) == ("never", {}, ())

    @pytest.mark.parametrize(
        ("lab", "last_result"),
        [
            (creatinine(1.1, when=OLD), "1.1 mg/dL"),
            (creatinine(97, "umol/L", when=OLD, code=b.CREATININE_UMOL), "1.1 mg/dL"),
            (egfr(75, when=OLD), "75 mL/min/1.73 m2"),
            (egfr(48, when=OLD, code="62238-1"), "48 mL/min/1.73 m2"),
        ],
        ids=["creatinine-mg", "creatinine-umol", "egfr-2021", "egfr-2009"],
    )
    def test_outdated_names_the_last_value_and_date(self, due, lab, last_result):
        [finding] = due(lab, GABA)
        assert finding.variant == "outdated"
        assert dict(finding.values) == {"last_result": last_result, "last_date": "2025-06-01"}
        assert [d.source for d in finding.data] == [f"Observation/{lab['id']}"]

    def test_outdated_names_the_newest_old_value(self, due):
        [finding] = due(creatinine(1.0, when="2024-03-01"), egfr(71, when=OLD), GABA)
        assert finding.values == {"last_result": "71 mL/min/1.73 m2", "last_date": "2025-06-01"}

    def test_outdated_cites_the_reported_creatinine_not_the_computed_egfr(self, due):
        """An old creatinine also yields a computed eGFR; the card cites the lab's value."""
        lab = creatinine(1.2, when=OLD)
        [finding] = due(lab, GABA)
        assert finding.values["last_result"] == "1.2 mg/dL"
        assert finding.data[0].source == f"Observation/{lab['id']}"

    @pytest.mark.parametrize(
        "lab",
        [
            creatinine(0.9),
            creatinine(80, "umol/L", code=b.CREATININE_UMOL),
            creatinine(80, "µmol/L", code=b.CREATININE_UMOL),
            egfr(85),
            egfr(85, code="62238-1"),
            egfr(85, code="33914-3"),
            creatinine(0.9, code="38483-4"),
            b.observation(b.EGFR, 85, "mL/min"),
        ],
        ids=[
            "2160-0",
            "14682-9",
            "14682-9-micro",
            "98979-8",
            "62238-1",
            "33914-3",
            "38483-4-blood",
            "egfr-unit-mL/min",
        ],
    )
    def test_silent_with_a_recent_creatinine_or_egfr(self, due, lab):
        assert due(lab) == []

    def test_silent_with_a_recent_value_even_when_older_ones_exist(self, due):
        assert due(creatinine(1.0, when=OLD), creatinine(0.9)) == []

    @pytest.mark.parametrize(
        ("when", "expected"),
        [
            ("2025-11-28T12:00:00Z", []),  # exactly 365 days before NOW: still recent
            ("2025-11-29T00:00:00Z", []),
            ("2025-11-28T11:59:00Z", ["outdated"]),
            ("2025-11-27T12:00:00Z", ["outdated"]),
        ],
    )
    def test_recency_window_is_365_days(self, due, when, expected):
        assert [f.variant for f in due(creatinine(0.9, when=when), GABA)] == expected

    @pytest.mark.parametrize("when", ["2025-11-28T11:59:00Z", OLD, "2019-01-01"])
    def test_an_old_result_without_a_gabapentinoid_is_not_a_yearly_reminder(self, due, when):
        """docs/card-topics.md, "Alert fatigue": not every RLS patient every year."""
        assert due(creatinine(0.9, when=when)) == []

    @pytest.mark.parametrize(
        "problem",
        [
            condition(ICD10CM, "N18.6", "End stage renal disease"),
            condition(ICD10CM, "Z99.2", "Dependence on renal dialysis"),
            condition(SNOMED, "46177005", "End-stage renal disease"),
            b.condition(text="Patient on hemodialysis"),
        ],
        ids=["N18.6", "Z99.2", "snomed-esrd", "dialysis-text"],
    )
    def test_never_with_esrd_or_dialysis_on_the_problem_list(self, due, problem):
        assert due(problem) == []
        assert due(problem, GABA, creatinine(0.9, when=OLD)) == []

    def test_resolved_esrd_does_not_silence(self, due):
        resolved = condition(ICD10CM, "N18.6", "ESRD", clinical="resolved")
        assert [f.variant for f in due(resolved)] == ["never"]

    @pytest.mark.parametrize("status", ["final", "amended", "corrected", "preliminary"])
    def test_usable_statuses_count(self, due, status):
        assert due(creatinine(0.9, status=status)) == []

    @pytest.mark.parametrize("status", ["registered", "cancelled", "entered-in-error"])
    def test_unusable_statuses_do_not_count(self, due, status):
        assert [f.variant for f in due(creatinine(0.9, status=status))] == ["never"]

    def test_creatinine_with_an_unknown_unit_does_not_count(self, due):
        assert [f.variant for f in due(creatinine(0.9, "mg/furlong"))] == ["never"]

    def test_creatinine_with_the_wrong_system_does_not_count(self, due):
        assert [f.variant for f in due(creatinine(0.9, system=SNOMED))] == ["never"]

    @pytest.mark.parametrize(
        "request_",
        [
            service_request(code="51990-0"),
            service_request(code="51990-0", status="on-hold"),
            service_request(text="Basic metabolic panel"),
            service_request(code="24323-8"),
            service_request(text="Comprehensive metabolic panel"),
        ],
        ids=["51990-0", "on-hold", "text", "cmp-code", "cmp-text"],
    )
    def test_silent_when_a_metabolic_panel_is_pending(self, due, request_):
        assert due(request_) == []

    @pytest.mark.parametrize("status", ["revoked", "entered-in-error", "draft"])
    def test_a_metabolic_panel_not_pending_does_not_silence(self, due, status):
        assert [f.variant for f in due(service_request(code="51990-0", status=status))] == ["never"]

    def test_a_pending_order_for_something_else_does_not_silence(self, due):
        ferritin_order = service_request(code=b.FERRITIN, text="Ferritin")
        assert [f.variant for f in due(ferritin_order)] == ["never"]

    def test_an_order_from_more_than_a_year_ago_does_not_silence(self, due):
        stale = service_request(code="51990-0", authored="2025-01-10")
        assert [f.variant for f in due(stale)] == ["never"]

    @pytest.mark.parametrize(
        ("med", "name"),
        [
            (b.medication_request(text="gabapentin 300 MG Oral Capsule"), "gabapentin 300 MG"),
            (b.medication_request(text="pregabalin 75 MG Oral Capsule"), "pregabalin 75 MG"),
            (b.medication_statement(text="Horizant 600 MG"), "Horizant 600 MG"),
        ],
        ids=["gabapentin", "pregabalin", "enacarbil-statement"],
    )
    def test_note_names_the_gabapentinoid_the_patient_takes(self, due, med, name):
        [finding] = due(med)
        assert len(finding.notes) == 1
        assert name in finding.notes[0]
        assert "kidney function" in finding.notes[0]

    def test_outdated_variant_also_carries_the_gabapentinoid_note(self, due):
        [finding] = due(creatinine(1.0, when=OLD), b.medication_request(text="gabapentin"))
        assert finding.variant == "outdated"
        assert any("gabapentin" in note for note in finding.notes)

    @pytest.mark.parametrize(
        "med",
        [
            b.medication_request(text="gabapentin 300 MG Oral Capsule", status="stopped"),
            b.medication_request(text="sertraline 50 MG Oral Tablet"),
        ],
        ids=["stopped-gabapentin", "not-a-gabapentinoid"],
    )
    def test_no_note_without_an_active_gabapentinoid(self, due, med):
        [finding] = due(med)
        assert finding.notes == ()

    def test_silent_when_labs_are_unavailable(self):
        found = b.findings(unavailable=frozenset({"labs"}))
        assert "renal-function-due" not in found

    def test_card_suggests_a_basic_metabolic_panel(self):
        card = render(b.findings())["renal-function-due"]
        assert card["indicator"] == "info"
        [suggestion] = card["suggestions"]
        [action] = suggestion["actions"]
        resource = action["resource"]
        assert resource["resourceType"] == "ServiceRequest"
        assert resource["code"]["coding"][0]["code"] == "51990-0"
        assert resource["subject"] == {"reference": f"Patient/{b.PATIENT_ID}"}

    def test_outdated_card_says_the_last_date(self):
        card = render(b.findings(egfr(75, when=OLD), GABA))["renal-function-due"]
        assert "2025-06-01" in card["summary"]
        assert "75 mL/min/1.73 m2" in card["summary"]


# --- kidney-disease ---------------------------------------------------------------------


def ckd_via_engine(*resources: dict, **kwargs) -> list:
    """With an active gabapentinoid, so that eGFR 30 to 59 and CKD 3 fire (renal dosing)."""
    found = b.findings(GABA, *resources, **kwargs).get("kidney-disease")
    return [found] if found else []


def ckd_via_rule(*resources: dict, **kwargs) -> list:
    return kidney.kidney_disease(b.picture(b.rls(), GABA, *resources, **kwargs), CKD)


def ckd_alone(*resources: dict, **kwargs) -> list:
    """No gabapentinoid on record."""
    return kidney.kidney_disease(b.picture(b.rls(), *resources, **kwargs), CKD)


@pytest.fixture(params=[ckd_via_engine, ckd_via_rule], ids=["engine", "rule"])
def ckd(request):
    return request.param


def variants(found: list) -> list[str]:
    return [f.variant for f in found]


class TestKidneyDiseaseByEgfr:
    @pytest.mark.parametrize(
        ("value", "expected", "stage"),
        [
            (90, [], None),
            (60.1, [], None),
            (60, [], None),
            (59.9, ["renal-dosing"], "G3a"),
            (59, ["renal-dosing"], "G3a"),
            (45, ["renal-dosing"], "G3a"),
            (44, ["renal-dosing"], "G3b"),
            (30, ["renal-dosing"], "G3b"),
            (29.9, ["severe"], "G4"),
            (29, ["severe"], "G4"),
            (15, ["severe"], "G4"),
            (14.9, ["kidney-failure"], "G5"),
            (14, ["kidney-failure"], "G5"),
            (6, ["kidney-failure"], "G5"),
        ],
    )
    def test_egfr_thresholds(self, ckd, value, expected, stage):
        found = ckd(egfr(value))
        assert variants(found) == expected
        if found:
            assert found[0].values["stage"] == stage

    @pytest.mark.parametrize("code", ["98979-8", "62238-1", "33914-3"])
    def test_every_reported_egfr_code_counts(self, ckd, code):
        assert variants(ckd(egfr(59, code=code))) == ["renal-dosing"]

    def test_egfr_written_in_ml_min_is_read_per_1_73_m2(self, ckd):
        [finding] = ckd(b.observation(b.EGFR, 45, "mL/min"))
        assert finding.values["egfr"] == "45 mL/min/1.73 m2"

    def test_values_name_the_egfr(self, ckd):
        [finding] = ckd(egfr(59))
        assert finding.values["egfr"] == "59 mL/min/1.73 m2"

    def test_old_low_egfr_does_not_fire(self, ckd):
        assert ckd(egfr(40, when=OLD)) == []

    def test_latest_egfr_wins(self, ckd):
        assert ckd(egfr(40, when="2026-05-01"), egfr(70)) == []
        assert variants(ckd(egfr(70, when="2026-05-01"), egfr(40))) == ["renal-dosing"]

    @pytest.mark.parametrize(("comparator", "expected"), [(">", []), ("<", ["renal-dosing"])])
    def test_comparator_at_60(self, ckd, comparator, expected):
        assert variants(ckd(egfr(60, comparator=comparator))) == expected

    def test_greater_than_59_is_not_known_to_be_low(self, ckd):
        assert ckd(egfr(59, comparator=">")) == []

    def test_computed_egfr_from_creatinine_fires(self, ckd):
        """Female, 58 years, creatinine 1.2 mg/dL: CKD-EPI 2021 gives about 52."""
        lab = creatinine(1.2)
        [finding] = ckd(lab)
        assert finding.variant == "renal-dosing"
        assert finding.values["egfr"] == "52 mL/min/1.73 m2"
        assert finding.values["stage"] == "G3a"
        assert f"Observation/{lab['id']}" in [d.source for d in finding.data]

    def test_computed_egfr_from_creatinine_in_umol(self, ckd):
        [finding] = ckd(creatinine(106.08, "umol/L", code=b.CREATININE_UMOL))
        assert finding.values["egfr"] == "52 mL/min/1.73 m2"

    def test_same_creatinine_in_a_man_is_not_low(self, ckd):
        """Male, 58 years, creatinine 1.2 mg/dL: about 70."""
        assert ckd(creatinine(1.2), gender="male") == []

    def test_no_computed_egfr_without_sex(self, ckd):
        assert ckd(creatinine(1.2), gender=None) == []

    def test_normal_creatinine_does_not_fire(self, ckd):
        assert ckd(b.kidney_ok()) == []

    def test_single_low_egfr_adds_a_note_about_3_months(self, ckd):
        [finding] = ckd(egfr(50))
        assert [n.key for n in finding.card_notes] == ["egfr-once"]
        card = render({"kidney-disease": finding})["kidney-disease"]
        assert "eGFR below 60 for more than 3 months" in card["detail"]

    @pytest.mark.parametrize(
        ("earlier", "note"),
        [
            ("2026-07-17T08:00:00Z", False),  # exactly 90 days before RECENT
            ("2026-07-01T08:00:00Z", False),
            ("2025-06-01T08:00:00Z", False),  # older than the window still shows chronicity
            ("2026-07-18T08:00:00Z", True),  # 89 days
            ("2026-09-15T08:00:00Z", True),
        ],
    )
    def test_two_low_egfrs_90_days_apart_need_no_note(self, ckd, earlier, note):
        [finding] = ckd(egfr(52, when=earlier), egfr(50))
        assert bool(finding.card_notes) is note

    def test_an_earlier_normal_egfr_does_not_make_it_chronic(self, ckd):
        [finding] = ckd(egfr(75, when="2026-05-01"), egfr(50))
        assert [n.key for n in finding.card_notes] == ["egfr-once"]


CKD_3_TO_5 = [
    (ICD10CM, "N18.3"),
    (ICD10CM, "N18.30"),
    (ICD10CM, "N18.31"),
    (ICD10CM, "N18.32"),
    (ICD10CM, "N18.4"),
    (ICD10CM, "N18.5"),
    (SNOMED, "433144002"),
    (SNOMED, "700378005"),
    (SNOMED, "431857002"),
    (SNOMED, "433146000"),
]


class TestKidneyDiseaseListed:
    @pytest.mark.parametrize(("system", "code"), CKD_3_TO_5)
    def test_ckd_stage_3_to_5_fires_listed_even_with_normal_egfr(self, ckd, system, code):
        [finding] = ckd(condition(system, code, "CKD"), egfr(75))
        stage_4_5 = code in ("N18.4", "N18.5", "431857002", "433146000")
        assert finding.variant == ("severe" if stage_4_5 else "renal-dosing")
        assert finding.values["egfr"] == "75 mL/min/1.73 m2"
        assert finding.values["kidney"] == "CKD on the problem list"
        assert finding.card_notes == ()

    def test_listed_without_any_egfr_says_not_measured(self, ckd):
        [finding] = ckd(condition(ICD10CM, "N18.4", "Chronic kidney disease, stage 4"))
        assert finding.variant == "severe"
        assert finding.values["egfr"] == "not measured"
        assert finding.values["conditions"] == "Chronic kidney disease, stage 4"

    def test_listed_by_text_only(self, ckd):
        listed = b.condition(text="Chronic kidney disease stage 4")
        assert variants(ckd(listed)) == ["severe"]

    def test_icd10_without_dot_matches(self, ckd):
        assert variants(ckd(condition(ICD10CM, "N1831"))) == ["renal-dosing"]

    @pytest.mark.parametrize(
        ("system", "code"),
        [(ICD10CM, "N18.9"), (ICD10CM, "N18.2"), (ICD10CM, "N18.1"), (ICD10CM, "N19")],
    )
    def test_unstaged_or_early_ckd_does_not_fire(self, ckd, system, code):
        assert ckd(condition(system, code, "CKD"), egfr(75)) == []

    @pytest.mark.parametrize(
        ("system", "code", "expected"),
        [
            (ICD10CM, "N18.6", "esrd-listed"),
            (SNOMED, "46177005", "esrd-listed"),
            (ICD10CM, "Z99.2", "dialysis"),
            (SNOMED, "105502003", "dialysis"),
            (SNOMED, "714152005", "dialysis"),
        ],
    )
    def test_esrd_and_dialysis(self, ckd, system, code, expected):
        assert variants(ckd(condition(system, code, "kidney"))) == [expected]

    def test_dialysis_by_text(self, ckd):
        assert variants(ckd(b.condition(text="Patient on hemodialysis"))) == ["dialysis"]

    def test_dialysis_wins_over_kidney_failure_egfr(self, ckd):
        assert variants(ckd(dialysis(), egfr(8))) == ["dialysis"]

    def test_kidney_failure_egfr_wins_over_esrd_listed(self, ckd):
        assert variants(ckd(b.esrd(), egfr(10))) == ["kidney-failure"]

    def test_ckd_listed_with_low_egfr_is_renal_dosing(self, ckd):
        [finding] = ckd(condition(ICD10CM, "N18.31", "CKD 3a"), egfr(50))
        assert finding.variant == "renal-dosing"
        assert finding.values["conditions"] == "CKD 3a"

    @pytest.mark.parametrize("clinical", ["resolved", "inactive", "remission"])
    def test_inactive_problem_does_not_fire(self, ckd, clinical):
        assert ckd(condition(ICD10CM, "N18.4", clinical=clinical), egfr(75)) == []

    @pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
    def test_refuted_problem_does_not_fire(self, ckd, verification):
        assert ckd(condition(ICD10CM, "N18.6", verification=verification)) == []

    def test_listed_data_cites_condition_and_lab(self, ckd):
        problem, lab = condition(ICD10CM, "N18.4", "CKD 4"), egfr(75)
        [finding] = ckd(problem, lab)
        assert [d.source for d in finding.data] == [
            f"Condition/{problem['id']}",
            f"Observation/{lab['id']}",
        ]


class TestKidneyDiseaseAlertFatigue:
    """docs/card-topics.md, "Alert fatigue": eGFR 30 to 59 and CKD 3 only beside a
    gabapentinoid; eGFR below 30, CKD 4 to 5, ESRD and dialysis always."""

    @pytest.mark.parametrize("value", [59.9, 45, 30])
    def test_egfr_30_to_59_without_a_gabapentinoid_is_silent(self, value):
        assert ckd_alone(egfr(value)) == []

    @pytest.mark.parametrize("code", ["N18.3", "N18.30", "N18.31", "N18.32"])
    def test_ckd_3_without_a_gabapentinoid_is_silent(self, code):
        assert ckd_alone(condition(ICD10CM, code, "CKD 3"), egfr(50)) == []

    @pytest.mark.parametrize(("value", "expected"), [(29.9, "severe"), (15, "severe"),
        (14.9, "kidney-failure")])  # fmt: skip
    def test_egfr_below_30_fires_always(self, value, expected):
        assert variants(ckd_alone(egfr(value))) == [expected]

    @pytest.mark.parametrize(("code", "expected"), [("N18.4", "severe"), ("N18.5", "severe"),
        ("N18.6", "esrd-listed"), ("Z99.2", "dialysis")])  # fmt: skip
    def test_ckd_4_to_5_esrd_and_dialysis_fire_always(self, code, expected):
        assert variants(ckd_alone(condition(ICD10CM, code, "kidney"), egfr(50))) == [expected]

    def test_a_stopped_gabapentinoid_does_not_count(self):
        stopped = b.medication_request(text="gabapentin 300 MG Oral Capsule", status="stopped")
        assert ckd_alone(egfr(45), stopped) == []

    @pytest.mark.parametrize("text", ["pregabalin 75 MG Oral Capsule", "Horizant 600 MG"])
    def test_any_gabapentinoid_counts(self, text):
        assert variants(ckd_alone(egfr(45), b.medication_request(text=text))) == ["renal-dosing"]


class TestKidneyDiseaseCards:
    @pytest.mark.parametrize(
        ("resources", "variant_", "indicator"),
        [
            ((egfr(50), GABA), "renal-dosing", "info"),
            ((egfr(22),), "severe", "info"),
            ((condition(ICD10CM, "N18.4", "CKD 4"), egfr(75)), "severe", "info"),
            ((b.esrd(),), "esrd-listed", "warning"),
            ((egfr(12),), "kidney-failure", "warning"),
            ((dialysis(),), "dialysis", "warning"),
        ],
        ids=["renal-dosing", "severe", "severe-listed", "esrd-listed", "kidney-failure",
             "dialysis"],
    )  # fmt: skip
    def test_indicator_per_variant(self, resources, variant_, indicator):
        found = b.findings(*resources)
        assert found["kidney-disease"].variant == variant_
        card = render(found)["kidney-disease"]
        assert card["indicator"] == indicator
        assert "suggestions" not in card

    def test_renal_dosing_summary_names_drug_value_and_stage(self):
        card = render(b.findings(egfr(42), GABA))["kidney-disease"]
        assert card["summary"] == (
            "RLS on gabapentin: eGFR 42 mL/min/1.73 m2 (KDIGO G3b); dose it for kidney function"
        )
        assert "secondary cause" not in card["summary"] + card["detail"]

    @pytest.mark.parametrize(
        ("resources", "source"),
        [
            ((egfr(42), GABA), "KDIGO"),
            ((egfr(22),), "KDIGO"),
            ((b.esrd(),), "end-stage renal disease"),
            ((egfr(12),), "end-stage renal disease"),
            ((dialysis(),), "end-stage renal disease"),
        ],
        ids=["renal-dosing", "severe", "esrd-listed", "kidney-failure", "dialysis"],
    )
    def test_source_matches_the_stage(self, resources, source):
        card = render(b.findings(*resources))["kidney-disease"]
        assert source in card["source"]["label"]
        if source == "KDIGO":
            assert "end-stage" not in json.dumps(card)

    def test_silent_when_labs_are_unavailable(self):
        assert "kidney-disease" not in b.findings(b.esrd(), unavailable=frozenset({"labs"}))


# --- gabapentinoid-renal-dose -----------------------------------------------------------


def dose_via_engine(*resources: dict, **kwargs) -> list:
    found = b.findings(*resources, **kwargs).get("gabapentinoid-renal-dose")
    return [found] if found else []


def dose_via_rule(*resources: dict, **kwargs) -> list:
    return CHECK_DOSE(b.picture(b.rls(), *resources, **kwargs), DOSE)


@pytest.fixture(params=[dose_via_engine, dose_via_rule], ids=["engine", "rule"])
def dose(request):
    return request.param


class TestGabapentinAboveLimit:
    @pytest.mark.parametrize(
        "dosage",
        [TID_STRUCTURED, TID_TEXT, TID_CODE, TID_CAPSULES],
        ids=["structured", "text", "timing-code", "capsule-count"],
    )
    def test_1800_mg_at_egfr_40_is_above_1400(self, dose, dosage):
        [finding] = dose(order(dosage), egfr(40))
        assert finding.variant == "above-limit"
        assert finding.values["drug"] == "Gabapentin"
        assert (finding.values["dose"], finding.values["limit"]) == ("1800", "1400")
        assert finding.values["kidney"] == "at eGFR 40 mL/min/1.73 m2"

    @pytest.mark.parametrize(
        "dosage", [TID_STRUCTURED, TID_TEXT, TID_CODE, TID_CAPSULES],
        ids=["structured", "text", "timing-code", "capsule-count"],
    )  # fmt: skip
    def test_same_dose_at_egfr_70_is_silent(self, dose, dosage):
        assert dose(order(dosage), egfr(70)) == []

    def test_update_targets_the_order_with_700_mg_twice_daily(self, dose):
        """A product without one strength in its name: the band's dose as it stands."""
        med = order(TID_STRUCTURED, text="gabapentin", code="25480")
        [finding] = dose(med, egfr(40))
        [target] = finding.targets
        assert target.reference == f"MedicationRequest/{med['id']}"
        update = dict(target.update)
        assert {k: v for k, v in update.items() if k != "dosageInstruction"} == {
            k: v for k, v in med.items() if k != "dosageInstruction"
        }
        [dosage] = update["dosageInstruction"]
        assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 700
        assert dosage["doseAndRate"][0]["doseQuantity"]["code"] == "mg"
        assert dosage["timing"]["repeat"] == {"frequency": 2, "period": 1, "periodUnit": "d"}
        assert dosage["text"].startswith("700 mg twice daily")
        MedicationRequest.model_validate(update)

    def test_update_of_300_mg_capsules_rounds_down_to_whole_capsules(self, dose):
        """700 mg is not a whole number of 300 mg capsules: 600 mg twice daily."""
        med = gabapentin_1800()
        [finding] = dose(med, egfr(40))
        [dosage] = finding.targets[0].update["dosageInstruction"]
        assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 600
        assert dosage["timing"]["repeat"] == {"frequency": 2, "period": 1, "periodUnit": "d"}
        assert dosage["text"].startswith("600 mg twice daily")

    def test_updated_daily_dose_is_within_the_band(self, dose):
        [finding] = dose(gabapentin_1800(), egfr(40))
        [dosage] = finding.targets[0].update["dosageInstruction"]
        per_day = dosage["timing"]["repeat"]["frequency"] / dosage["timing"]["repeat"]["period"]
        assert dosage["doseAndRate"][0]["doseQuantity"]["value"] * per_day <= 1400

    def test_update_drops_the_ehr_meta(self, dose):
        med = gabapentin_1800()
        med["meta"] = {"versionId": "3", "lastUpdated": "2026-11-01T00:00:00Z"}
        [finding] = dose(med, egfr(40))
        assert "meta" not in finding.targets[0].update

    def test_update_keeps_the_route(self, dose):
        med = order(TID_STRUCTURED | {"route": ORAL})
        [finding] = dose(med, egfr(40))
        assert finding.targets[0].update["dosageInstruction"][0]["route"] == ORAL

    def test_rendered_card_offers_a_valid_fhir_update(self):
        med = gabapentin_1800()
        card = render(b.findings(med, egfr(40)))["gabapentinoid-renal-dose"]
        assert card["indicator"] == "warning"
        assert "1800" in card["summary"] and "1400" in card["summary"]
        [suggestion] = card["suggestions"]
        assert suggestion["isRecommended"] is True
        [action] = suggestion["actions"]
        assert action["type"] == "update"
        resource = action["resource"]
        assert resource["id"] == med["id"]
        assert resource["medicationCodeableConcept"] == med["medicationCodeableConcept"]
        assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 600
        MedicationRequest.model_validate(resource)

    def test_original_order_is_not_modified(self, dose):
        med = gabapentin_1800()
        dose(med, egfr(40))
        assert med["dosageInstruction"] == [TID_STRUCTURED]

    def test_data_cite_order_and_egfr(self, dose):
        med, lab = gabapentin_1800(), egfr(40)
        [finding] = dose(med, lab)
        sources = [d.source for d in finding.data]
        assert f"MedicationRequest/{med['id']}" in sources
        assert f"Observation/{lab['id']}" in sources

    def test_statement_gets_no_update_action(self, dose):
        [finding] = dose(gabapentin_1800(kind="statement"), egfr(40))
        assert finding.variant == "above-limit"
        assert finding.targets == ()

    def test_statement_card_has_no_suggestion(self):
        found = b.findings(gabapentin_1800(kind="statement"), egfr(40))
        assert "suggestions" not in render(found)["gabapentinoid-renal-dose"]

    @pytest.mark.parametrize("status", ["stopped", "completed", "cancelled", "entered-in-error"])
    def test_inactive_order_is_silent(self, dose, status):
        assert dose(gabapentin_1800(status=status), egfr(40)) == []

    def test_on_hold_order_counts(self, dose):
        assert variants(dose(gabapentin_1800(status="on-hold"), egfr(40))) == ["above-limit"]

    def test_morning_and_evening_instructions_add_up(self, dose):
        med = order(structured(900, 1), structured(600, 1))
        [finding] = dose(med, egfr(40))
        assert finding.values["dose"] == "1500"

    def test_dose_range_counts_at_its_high_end(self, dose):
        ranged = {
            "doseAndRate": [{"doseRange": {"low": mg(300), "high": mg(800)}}],
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
        }
        [finding] = dose(order(ranged), egfr(40))
        assert finding.values["dose"] == "1600"

    def test_gram_units(self, dose):
        grams = {
            "doseAndRate": [{"doseQuantity": {"value": 0.6, "unit": "g", "code": "g"}}],
            "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
        }
        [finding] = dose(order(grams), egfr(40))
        assert finding.values["dose"] == "1800"


class TestGabapentinBands:
    @pytest.mark.parametrize(
        ("clearance", "daily_mg", "limit"),
        [
            (90, 3600, None),
            (90, 3700, "3600"),
            (60, 1800, None),  # 60 is in the top row
            (60, 3600, None),
            (59.9, 1800, "1400"),
            (59, 1400, None),
            (59, 1500, "1400"),
            (30.1, 1400, None),
            (30, 1400, "700"),  # exactly 30 falls to the 15-29 row
            (30, 700, None),
            (29.5, 700, None),
            (15.1, 700, None),
            (15, 700, "300"),  # 15 is the "15 or less" row
            (15, 300, None),
            (14, 300, "280"),  # below 15: the limit shrinks in proportion to the clearance
            (10, 400, "200"),
            (10, 200, None),
            (7.5, 200, "150"),  # the label's example: CrCl 7.5 takes half of CrCl 15
            (7.5, 150, None),
        ],
    )
    def test_band_edges(self, dose, clearance, daily_mg, limit):
        found = dose(order(structured(daily_mg, 1)), egfr(clearance))
        assert [f.values["limit"] for f in found] == ([limit] if limit else [])

    @pytest.mark.parametrize(
        ("clearance", "product", "suggested", "per_day"),
        [
            (40, "gabapentin", 700, 2),
            (20, "gabapentin", 700, 1),
            (15, "gabapentin", 300, 1),
            (10, "gabapentin", 200, 1),
            (7.5, "gabapentin 100 MG Oral Capsule", 100, 1),
            (40, "gabapentin 300 MG Oral Capsule", 600, 2),
            (20, "gabapentin 100 MG Oral Capsule", 700, 1),
            (20, "gabapentin 600 MG Oral Tablet", 600, 1),
            (15, "gabapentin 300 MG Oral Capsule", 300, 1),
            (10, "gabapentin 100 MG Oral Capsule", 200, 1),
        ],
    )
    def test_suggested_dose_per_band(self, dose, clearance, product, suggested, per_day):
        [finding] = dose(order(structured(1200, 3), text=product, code=None), egfr(clearance))
        [dosage] = finding.targets[0].update["dosageInstruction"]
        assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == suggested
        assert dosage["timing"]["repeat"]["frequency"] == per_day

    def test_dialysis_uses_the_dialysis_row(self, dose):
        [finding] = dose(gabapentin_1800(), dialysis())
        assert finding.variant == "above-limit"
        assert (finding.values["limit"], finding.values["kidney"]) == ("300", "on dialysis")
        dosage = finding.targets[0].update["dosageInstruction"][0]
        assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 300

    def test_dialysis_within_limit_is_silent(self, dose):
        assert dose(order(structured(300, 1)), dialysis()) == []

    def test_esrd_without_dialysis_uses_the_egfr(self, dose):
        """N18.6 alone is not the haemodialysis row: the eGFR decides."""
        found = dose(order(structured(600, 1)), b.esrd(), egfr(12))
        assert [f.values["limit"] for f in found] == ["240"]  # 300 x 12/15

    def test_below_15_no_whole_capsule_fits_and_the_card_says_so(self, dose):
        product = "gabapentin 300 MG Oral Capsule"
        [finding] = dose(order(structured(300, 1), text=product, code=None), egfr(10))
        assert finding.values["limit"] == "200"
        assert finding.targets[0].update is None
        assert "no whole tablet" in finding.notes[0]


class TestPregabalin:
    @pytest.mark.parametrize(
        ("per_dose", "expected"),
        [(150, []), (100, []), (200, ["above-limit"]), (300, ["above-limit"])],
    )
    def test_twice_daily_at_egfr_40_limit_300(self, dose, per_dose, expected):
        found = dose(pregabalin(per_dose), egfr(40))
        assert variants(found) == expected
        if found:
            assert finding_values(found) == ("Pregabalin", f"{per_dose * 2}", "300")

    @pytest.mark.parametrize(
        ("clearance", "daily_mg", "limit"),
        [
            (60, 600, None),  # ">= 60" row
            (60, 650, "600"),
            (59.9, 300, None),
            (59.9, 400, "300"),
            (30.1, 300, None),
            (30, 300, "150"),  # shared edge 30 takes the lower row
            (30, 150, None),
            (15.1, 150, None),
            (14.9, 150, "75"),
            (10, 75, None),
        ],
    )
    def test_band_edges(self, dose, clearance, daily_mg, limit):
        found = dose(order(structured(daily_mg, 1), text="pregabalin", code=None), egfr(clearance))
        assert [f.values["limit"] for f in found] == ([limit] if limit else [])

    def test_clearance_15_is_in_the_15_to_30_row(self, dose):
        """Lyrica: rows 15-30 and <15; 15 is not a shared edge, so it belongs to 15-30
        (limit 150), as the card file's own comment reads the label."""
        assert dose(order(structured(150, 1), text="pregabalin", code=None), egfr(15)) == []

    def test_pregabalin_update_suggests_150_mg_twice_daily(self, dose):
        [finding] = dose(pregabalin(200), egfr(40))
        dosage = finding.targets[0].update["dosageInstruction"][0]
        assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 150
        assert dosage["timing"]["repeat"]["frequency"] == 2


def finding_values(found: list) -> tuple[str, str, str]:
    values = found[0].values
    return values["drug"], values["dose"], values["limit"]


class TestGabapentinEnacarbil:
    @pytest.mark.parametrize(
        "med",
        [
            horizant(600),
            order(TID_STRUCTURED, text="gabapentin enacarbil 600 MG", code=None),
            order(structured(600, 1), text="", code="1101338"),
        ],
        ids=["Horizant-text", "enacarbil-text", "enacarbil-SCD"],
    )
    def test_not_recommended_on_dialysis(self, dose, med):
        [finding] = dose(med, dialysis())
        assert finding.variant == "not-recommended"
        assert finding.values["drug"] == "Horizant"
        (target,) = finding.targets  # to cancel (order hooks), never to adjust
        assert target.reference.startswith("MedicationRequest/") and target.update is None

    def test_not_recommended_card_is_a_warning_without_suggestion(self):
        card = render(b.findings(horizant(600), dialysis()))["gabapentinoid-renal-dose"]
        assert card["indicator"] == "warning"
        assert card["summary"].startswith("Horizant is not recommended on dialysis (label)")
        assert "suggestions" not in card

    def test_not_recommended_on_dialysis_even_without_a_readable_dose(self, dose):
        med = order(text="Horizant 600 MG Extended Release Oral Tablet", code=None)
        assert variants(dose(med, dialysis())) == ["not-recommended"]

    def test_horizant_is_judged_as_enacarbil_not_gabapentin(self, dose):
        """1200 mg/day at eGFR 40: within gabapentin's 1400, above enacarbil's 600."""
        [finding] = dose(horizant(600, 2), egfr(40))
        assert finding_values([finding]) == ("Horizant", "1200", "600")

    def test_gabapentin_enacarbil_text_is_judged_as_enacarbil(self, dose):
        med = order(structured(600, 2), text="gabapentin enacarbil 600 MG ER tablet", code=None)
        [finding] = dose(med, egfr(40))
        assert finding.values["drug"] == "Horizant"

    @pytest.mark.parametrize(
        ("clearance", "daily_mg", "limit"),
        [
            (60, 1200, None),
            (60, 1800, "1200"),
            (59.9, 600, None),
            (59.9, 1200, "600"),
            (30, 600, None),
            (29.9, 600, "300"),
            (15, 300, None),
            (14.9, 300, "150"),
        ],
    )
    def test_band_edges(self, dose, clearance, daily_mg, limit):
        found = dose(horizant(daily_mg), egfr(clearance))
        assert [f.values["limit"] for f in found] == ([limit] if limit else [])

    def test_below_15_a_600_mg_tablet_cannot_be_cut_to_the_band(self, dose):
        """Extended-release 600 mg tablets cannot give 300 mg every other day: no update is
        offered, and the card says a lower strength is needed."""
        [finding] = dose(horizant(600), egfr(10))
        assert finding.targets[0].update is None
        assert any("lower strength" in note for note in finding.notes)

    def test_below_15_suggests_300_mg_every_other_day(self, dose):
        [finding] = dose(horizant(600, text="Horizant 300 MG Extended Release"), egfr(10))
        dosage = finding.targets[0].update["dosageInstruction"][0]
        assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 300
        assert dosage["timing"]["repeat"] == {"frequency": 1, "period": 2, "periodUnit": "d"}
        MedicationRequest.model_validate(finding.targets[0].update)


class TestDoseUnknownAndKidneyUnknown:
    def test_no_dosage_with_reduced_function_is_dose_unknown(self, dose):
        med = order()
        [finding] = dose(med, egfr(40))
        assert finding.variant == "dose-unknown"
        assert finding.values["limit"] == "1400"
        assert finding.targets == ()

    def test_dose_unknown_card_is_info_without_suggestion(self):
        card = render(b.findings(order(), egfr(40)))["gabapentinoid-renal-dose"]
        assert card["indicator"] == "info"
        assert "suggestions" not in card

    @pytest.mark.parametrize(
        "dosage",
        [
            {"text": "take as directed"},
            {"text": "300 mg or 600 mg three times daily"},
            {"doseAndRate": [{"doseQuantity": mg(600)}]},  # no timing
            {"doseAndRate": [{"doseQuantity": {"value": 2, "unit": "puff"}}],
             "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}}},
        ],
        ids=["no-amount", "two-amounts", "no-timing", "unknown-unit"],
    )  # fmt: skip
    def test_unreadable_dosage_is_dose_unknown(self, dose, dosage):
        assert variants(dose(order(dosage), egfr(40))) == ["dose-unknown"]

    def test_capsule_count_without_a_strength_is_dose_unknown(self, dose):
        assert variants(dose(order(TID_CAPSULES, text="gabapentin", code=None), egfr(40))) == [
            "dose-unknown"
        ]

    def test_no_dosage_with_normal_function_is_silent(self, dose):
        assert dose(order(), egfr(75)) == []

    def test_kidney_function_unknown_is_silent(self, dose):
        assert dose(gabapentin_1800()) == []

    def test_only_an_old_egfr_is_unknown_kidney_function(self, dose):
        assert dose(gabapentin_1800(), egfr(20, when=OLD)) == []

    def test_egfr_with_a_comparator_is_not_a_clearance(self, dose):
        assert dose(gabapentin_1800(), egfr(60, comparator="<")) == []

    def test_silent_when_labs_are_unavailable(self):
        found = b.findings(gabapentin_1800(), egfr(20), unavailable=frozenset({"labs"}))
        assert "gabapentinoid-renal-dose" not in found

    def test_silent_when_medications_are_unavailable(self):
        found = b.findings(gabapentin_1800(), egfr(20), unavailable=frozenset({"medications"}))
        assert "gabapentinoid-renal-dose" not in found

    def test_above_limit_wins_over_dose_unknown_and_both_are_named(self, dose):
        [finding] = dose(gabapentin_1800(), order(text="pregabalin", code=None), egfr(40))
        assert finding.variant == "above-limit"
        assert "daily dose not readable" in finding.values["medications"]
        assert len(finding.targets) == 1

    def test_two_culprits_make_one_finding(self, dose):
        gaba, pgb = gabapentin_1800(), pregabalin(200)
        [finding] = dose(gaba, pgb, egfr(40))
        assert {t.reference for t in finding.targets} == {
            f"MedicationRequest/{gaba['id']}",
            f"MedicationRequest/{pgb['id']}",
        }


class TestCockcroftGault:
    def test_weight_makes_the_clearance_cockcroft_gault(self, dose):
        """Female 58 y, 60 kg, creatinine 1.0: CrCl 58 (band 30-59)."""
        [finding] = dose(gabapentin_1800(), creatinine(1.0), weight(60))
        assert finding.values["kidney"] == "at CrCl 58 mL/min (Cockcroft-Gault)"
        assert finding.values["limit"] == "1400"

    def test_crcl_40_by_cockcroft_gault(self, dose):
        """Female 58 y, 62 kg, creatinine 1.5 mg/dL: CrCl 40."""
        [finding] = dose(gabapentin_1800(), creatinine(1.5), weight(62))
        assert finding.variant == "above-limit"
        assert finding.values["kidney"] == "at CrCl 40 mL/min (Cockcroft-Gault)"
        assert (finding.values["dose"], finding.values["limit"]) == ("1800", "1400")
        dosage = finding.targets[0].update["dosageInstruction"][0]
        assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 600  # 2 x 300 mg

    def test_measured_body_weight_code_counts(self, dose):
        measured = b.observation("3141-9", 62, "kg")
        [finding] = dose(gabapentin_1800(), creatinine(1.5), measured)
        assert finding.values["kidney"] == "at CrCl 40 mL/min (Cockcroft-Gault)"

    def test_creatinine_in_umol_for_cockcroft_gault(self, dose):
        lab = creatinine(132.6, "umol/L", code=b.CREATININE_UMOL)
        [finding] = dose(gabapentin_1800(), lab, weight(62))
        assert finding.values["kidney"] == "at CrCl 40 mL/min (Cockcroft-Gault)"

    def test_weight_in_pounds(self, dose):
        [finding] = dose(gabapentin_1800(), creatinine(1.0), weight(132.28, "[lb_av]"))
        assert finding.values["kidney"] == "at CrCl 58 mL/min (Cockcroft-Gault)"

    def test_sex_factor_085(self, dose):
        """Same data in a man: CrCl 68, top row, 1800 mg/day is fine."""
        assert dose(gabapentin_1800(), creatinine(1.0), weight(60), gender="male") == []

    def test_crcl_low_while_egfr_normal_fires(self, dose):
        """45 kg, creatinine 1.0: eGFR 65 but CrCl 44. The label means CrCl."""
        [finding] = dose(gabapentin_1800(), creatinine(1.0), weight(45))
        assert finding.values["kidney"] == "at CrCl 44 mL/min (Cockcroft-Gault)"
        assert finding.values["limit"] == "1400"

    def test_crcl_normal_while_egfr_low_is_silent(self, dose):
        """120 kg, creatinine 1.5: eGFR 40 but CrCl 77."""
        assert dose(gabapentin_1800(), creatinine(1.5), weight(120)) == []

    def test_crcl_is_used_over_a_reported_egfr(self, dose):
        assert dose(gabapentin_1800(), creatinine(1.5), weight(120), egfr(35)) == []

    def test_old_weight_falls_back_to_egfr(self, dose):
        [finding] = dose(gabapentin_1800(), creatinine(1.5), weight(120, when=OLD))
        assert finding.values["kidney"] == "at eGFR 40 mL/min/1.73 m2"

    def test_no_sex_falls_back_to_reported_egfr(self, dose):
        [finding] = dose(gabapentin_1800(), creatinine(1.0), weight(120), egfr(40), gender=None)
        assert finding.values["kidney"] == "at eGFR 40 mL/min/1.73 m2"

    def test_data_cite_creatinine_and_weight(self, dose):
        lab, kg = creatinine(1.0), weight(45)
        [finding] = dose(gabapentin_1800(), lab, kg)
        sources = [d.source for d in finding.data]
        assert f"Observation/{lab['id']}" in sources
        assert f"Observation/{kg['id']}" in sources

    def test_cockcroft_gault_formula(self):
        from cds_service.clinical.kidney import cockcroft_gault

        assert cockcroft_gault(58, 60, 1.0, "male") == pytest.approx(68.333, abs=1e-3)
        assert cockcroft_gault(58, 60, 1.0, "female") == pytest.approx(58.083, abs=1e-3)
