"""Kidney function for dosing: dialysis, else Cockcroft-Gault with a weight, else eGFR."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cds_service.clinical.egfr import ckd_epi_2021
from cds_service.clinical.kidney import KidneyFunction, cockcroft_gault, kidney_function
from tests import builders as b
from tests.builders import ICD10CM, SNOMED

YEAR = timedelta(days=365)
RECENT = "2026-10-15T08:00:00Z"
OLD = "2025-11-01T08:00:00Z"  # more than 365 days before NOW (2026-11-28)
AGE = 58  # default patient, born 1968-04-12, on RECENT


def creatinine(value: float = 1.0, unit: str = "mg/dL", when: str = RECENT, **kw) -> dict:
    return b.observation(b.CREATININE, value, unit, when=when, **kw)


def weight(value: float = 70, unit: str = "kg", when: str = RECENT) -> dict:
    return b.observation(b.WEIGHT, value, unit, when=when)


def egfr(value: float, when: str = RECENT, code: str = b.EGFR, **kw) -> dict:
    return b.observation(code, value, "mL/min/{1.73_m2}", when=when, **kw)


def dialysis(**kwargs) -> dict:
    return b.condition(b.coding(ICD10CM, "Z99.2", "Dependence on renal dialysis"), **kwargs)


def kidney(*resources: dict, **picture_kwargs) -> KidneyFunction | None:
    return kidney_function(b.picture(*resources, **picture_kwargs), YEAR)


# --- Cockcroft-Gault ------------------------------------------------------------------------


def test_cockcroft_gault_male_reference():
    assert cockcroft_gault(60, 72, 1.0, "male") == pytest.approx(80)


def test_cockcroft_gault_female_is_085_of_male():
    assert cockcroft_gault(60, 72, 1.0, "female") == pytest.approx(68)


@pytest.mark.parametrize(
    ("age", "weight_kg", "scr", "sex", "expected"),
    [
        (80, 60, 2.0, "male", 25),
        (40, 90, 1.5, "male", 100 * 90 / 108),
        (70, 50, 0.8, "female", 70 * 50 / 57.6 * 0.85),
    ],
)
def test_cockcroft_gault_values(age, weight_kg, scr, sex, expected):
    assert cockcroft_gault(age, weight_kg, scr, sex) == pytest.approx(expected)


# --- dialysis -------------------------------------------------------------------------------


def test_dialysis_condition_means_dialysis_whatever_the_labs():
    found = kidney(dialysis(), creatinine(), weight(), egfr(80))
    assert found is not None
    assert found.method == "dialysis"
    assert found.clearance is None
    assert found.dialysis is not None
    assert found.dialysis.name == "Dependence on renal dialysis"
    assert found.describe() == "on dialysis"


@pytest.mark.parametrize(
    "condition",
    [
        b.condition(b.coding(ICD10CM, "Z992")),
        b.condition(b.coding(SNOMED, "714152005")),
        b.condition(text="Patient on hemodialysis three times weekly"),
    ],
    ids=["icd-undotted", "snomed", "text"],
)
def test_dialysis_codes_and_text(condition):
    found = kidney(condition)
    assert found is not None
    assert found.method == "dialysis"


def test_resolved_dialysis_is_not_dialysis():
    found = kidney(dialysis(clinical="resolved"), egfr(55))
    assert found is not None
    assert found.method == "eGFR"
    assert found.clearance == pytest.approx(55)


def test_refuted_dialysis_is_not_dialysis():
    assert kidney(dialysis(verification="refuted")) is None


def test_esrd_without_dialysis_reads_the_labs():
    found = kidney(b.esrd(), egfr(12))
    assert found is not None
    assert found.method == "eGFR"
    assert found.clearance == pytest.approx(12)


# --- Cockcroft-Gault from the record --------------------------------------------------------


def test_creatinine_weight_sex_and_age_give_cockcroft_gault():
    scr, wt = creatinine(1.0), weight(70)
    found = kidney(scr, wt)
    assert found is not None
    assert found.method == "Cockcroft-Gault"
    assert found.clearance == pytest.approx((140 - AGE) * 70 / 72 * 0.85)
    assert [lab.source for lab in found.labs] == [
        f"Observation/{scr['id']}",
        f"Observation/{wt['id']}",
    ]
    assert found.describe() == "CrCl 68 mL/min (Cockcroft-Gault)"


def test_male_patient():
    found = kidney(creatinine(1.0), weight(70), gender="male")
    assert found is not None
    assert found.clearance == pytest.approx((140 - AGE) * 70 / 72)


def test_weight_in_pounds():
    found = kidney(creatinine(1.0), weight(154.3234, "[lb_av]"))
    assert found is not None
    assert found.method == "Cockcroft-Gault"
    assert found.clearance == pytest.approx((140 - AGE) * 70 / 72 * 0.85, rel=1e-4)


def test_creatinine_in_umol_per_litre():
    found = kidney(creatinine(88.4, "umol/L"), weight(70))
    assert found is not None
    assert found.clearance == pytest.approx((140 - AGE) * 70 / 72 * 0.85)


def test_latest_creatinine_and_weight_are_used():
    found = kidney(
        creatinine(1.0, when="2026-03-01T08:00:00Z"),
        creatinine(2.0),
        weight(90, when="2026-03-01T08:00:00Z"),
        weight(60),
    )
    assert found is not None
    assert found.clearance == pytest.approx((140 - AGE) * 60 / (72 * 2.0) * 0.85)


def test_age_is_taken_on_the_creatinine_date():
    # Born 1968-04-12: 57 on 2026-04-01, 58 from 2026-04-12.
    found = kidney(creatinine(1.0, when="2026-04-01T08:00:00Z"), weight(72))
    assert found is not None
    assert found.clearance == pytest.approx((140 - 57) * 72 / 72 * 0.85)


def test_weight_exactly_365_days_old_still_counts():
    found = kidney(creatinine(), weight(when="2025-11-28T12:00:00Z"))
    assert found is not None
    assert found.method == "Cockcroft-Gault"


# --- eGFR instead ---------------------------------------------------------------------------


def test_no_weight_uses_the_reported_egfr():
    reported = egfr(45)
    found = kidney(creatinine(1.0), reported)
    assert found is not None
    assert found.method == "eGFR"
    assert found.clearance == pytest.approx(45)
    assert found.labs[0].source == f"Observation/{reported['id']}"
    assert found.describe() == "eGFR 45 mL/min/1.73 m2"


def test_egfr_ckd_epi_2009_code_is_accepted():
    found = kidney(egfr(52, code="62238-1"))
    assert found is not None
    assert found.method == "eGFR"
    assert found.clearance == pytest.approx(52)


def test_no_weight_computes_egfr_from_creatinine():
    scr = creatinine(1.0)
    found = kidney(scr)
    assert found is not None
    assert found.method == "eGFR"
    assert found.clearance == pytest.approx(ckd_epi_2021(1.0, AGE, "female"))
    assert found.labs[0].source == "computed"
    assert found.labs[1].source == f"Observation/{scr['id']}"


def test_weight_older_than_365_days_falls_back_to_egfr():
    found = kidney(creatinine(1.0), weight(70, when=OLD))
    assert found is not None
    assert found.method == "eGFR"
    assert found.clearance == pytest.approx(ckd_epi_2021(1.0, AGE, "female"))


def test_old_creatinine_and_recent_weight_tell_nothing():
    assert kidney(creatinine(1.0, when=OLD), weight(70)) is None


def test_unknown_sex_uses_the_reported_egfr():
    found = kidney(creatinine(1.0), weight(70), egfr(40), gender=None)
    assert found is not None
    assert found.method == "eGFR"
    assert found.clearance == pytest.approx(40)


def test_creatinine_with_a_comparator_is_not_used():
    assert kidney(creatinine(0.3, comparator="<"), weight(70)) is None


@pytest.mark.parametrize(("comparator", "text"), [(">", "eGFR >60"), (">=", "eGFR >=60")])
def test_egfr_reported_above_a_value_places_the_patient_at_or_above_it(comparator, text):
    """docs/card-topics.md: ">60" places the patient in the row at or above 60."""
    found = kidney(egfr(60, comparator=comparator))
    assert found is not None
    assert found.describe() == f"{text} mL/min/1.73 m2"
    assert found.phrase() == f"at {text} mL/min/1.73 m2"
    assert found.band_clearance is not None and found.band_clearance >= 60


def test_greater_than_30_is_in_a_row_over_30():
    found = kidney(egfr(30, comparator=">"))
    assert found is not None and found.band_clearance is not None
    assert found.band_clearance > 30


@pytest.mark.parametrize("comparator", ["<", "<="])
def test_egfr_reported_below_a_value_is_not_a_clearance(comparator):
    assert kidney(egfr(15, comparator=comparator)) is None


def test_nothing_recent_is_none():
    assert kidney() is None
    assert kidney(egfr(30, when=OLD)) is None


def test_under_18_uses_egfr_not_cockcroft_gault():
    found = kidney(creatinine(0.6), weight(50), egfr(110), birth_date="2010-01-01")
    assert found is not None
    assert found.method == "eGFR"
    assert found.clearance == pytest.approx(110)


def test_under_18_without_a_reported_egfr_is_none():
    # CKD-EPI 2021 is for adults: no eGFR is computed for a child either.
    assert kidney(creatinine(0.6), weight(50), birth_date="2010-01-01") is None


def test_eighteenth_birthday_on_the_creatinine_date_is_an_adult():
    found = kidney(creatinine(1.0), weight(72), birth_date="2008-10-15", gender="male")
    assert found is not None
    assert found.method == "Cockcroft-Gault"
    assert found.clearance == pytest.approx(122)


# --- describe -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "text"),
    [
        (KidneyFunction("Cockcroft-Gault", 42.4), "CrCl 42 mL/min (Cockcroft-Gault)"),
        (KidneyFunction("Cockcroft-Gault", 112.6), "CrCl 113 mL/min (Cockcroft-Gault)"),
        (KidneyFunction("eGFR", 28.4), "eGFR 28 mL/min/1.73 m2"),
        (KidneyFunction("eGFR", 90), "eGFR 90 mL/min/1.73 m2"),
        (KidneyFunction("dialysis", None), "on dialysis"),
    ],
)
def test_describe(function, text):
    assert function.describe() == text
