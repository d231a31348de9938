"""Daily dose from FHIR Dosage, product strength, and the label's renal dose bands."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cds_service.clinical.dosing import DoseBand, DrugDosing, daily_dose_mg, product_strength_mg
from cds_service.clinical.fhir_read import Dosage
from tests import builders as b

UCUM = "http://unitsofmeasure.org"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
CAPSULE_300 = "gabapentin 300 MG Oral Capsule"
TABLET_600 = "gabapentin 600 MG Oral Tablet"


def quantity(value: float, unit: str | None, code: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"value": value}
    if unit is not None:
        found["unit"] = unit
    if code is not None:
        found |= {"system": UCUM, "code": code}
    return found


def repeat(
    frequency: int | None = None,
    period: float | None = None,
    unit: str | None = None,
    frequency_max: int | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if frequency is not None:
        found["frequency"] = frequency
    if frequency_max is not None:
        found["frequencyMax"] = frequency_max
    if period is not None:
        found["period"] = period
    if unit is not None:
        found["periodUnit"] = unit
    return {"repeat": found}


def timing_code(code: str) -> dict[str, Any]:
    return {"code": {"coding": [{"system": GTS, "code": code}]}}


def dosage(
    dose: dict[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
    *,
    dose_range: tuple[dict[str, Any], dict[str, Any]] | None = None,
    text: str | None = None,
) -> Dosage:
    raw: dict[str, Any] = {}
    if dose is not None:
        raw["doseAndRate"] = [{"doseQuantity": dose}]
    if dose_range is not None:
        low, high = dose_range
        raw["doseAndRate"] = [{"doseRange": {"low": low, "high": high}}]
    if timing is not None:
        raw["timing"] = timing
    if text is not None:
        raw["text"] = text
    return Dosage.model_validate(raw)


def mg(value: float) -> dict[str, Any]:
    return quantity(value, "mg", "mg")


def daily(times: int) -> dict[str, Any]:
    return repeat(times, 1, "d")


# --- structured doseAndRate + timing.repeat -------------------------------------------------


@pytest.mark.parametrize(
    ("dose", "timing", "expected"),
    [
        (mg(300), daily(3), 900),
        (mg(300), daily(1), 300),
        (mg(600), repeat(1, 12, "h"), 1200),
        (mg(300), repeat(1, 8, "h"), 900),
        (mg(300), repeat(1, 2, "d"), 150),
        (mg(300), repeat(14, 1, "wk"), 600),
        (mg(300), repeat(1, 1, "wk"), 300 / 7),
        (quantity(0.3, "g", "g"), daily(3), 900),
        (quantity(1.2, "g", "g"), daily(2), 2400),
        (quantity(300, "mg"), daily(3), 900),  # unit text only, no UCUM code
        (quantity(300, "MG"), daily(2), 600),
        (mg(300), repeat(None, 1, "d"), 300),  # a period without frequency: once per period
    ],
)
def test_structured_mass_dose_times_frequency(dose, timing, expected):
    assert daily_dose_mg([dosage(dose, timing)], "gabapentin") == pytest.approx(expected)


def test_frequency_max_is_preferred_over_frequency():
    found = daily_dose_mg([dosage(mg(300), repeat(2, 1, "d", frequency_max=4))], None)
    assert found == pytest.approx(1200)


def test_dose_range_counts_at_its_high_end():
    found = daily_dose_mg([dosage(dose_range=(mg(300), mg(600)), timing=daily(3))], None)
    assert found == pytest.approx(1800)


def test_dose_range_without_high_end_is_unknown():
    raw = {"doseAndRate": [{"doseRange": {"low": mg(300)}}], "timing": daily(3)}
    assert daily_dose_mg([Dosage.model_validate(raw)], None) is None


# --- count units times product strength -----------------------------------------------------


@pytest.mark.parametrize(
    ("dose", "product", "expected"),
    [
        (quantity(1, "capsule"), CAPSULE_300, 900),
        (quantity(2, "capsules"), CAPSULE_300, 1800),
        (quantity(1, "tablet"), TABLET_600, 1800),
        (quantity(1, "tablet", "{tbl}"), TABLET_600, 1800),
        (quantity(1, None, "{tbl}"), TABLET_600, 1800),
        (quantity(1, "Capsule", "{capsule}"), CAPSULE_300, 900),
        (quantity(0.5, "tablet"), TABLET_600, 900),
        (quantity(1, "capsule"), "gabapentin 300 MG Oral Capsule [Neurontin]", 900),
    ],
)
def test_count_units_multiply_the_product_strength(dose, product, expected):
    assert daily_dose_mg([dosage(dose, daily(3))], product) == pytest.approx(expected)


@pytest.mark.parametrize(
    "product",
    [
        None,
        "",
        "gabapentin",
        "carbidopa 25 MG / levodopa 100 MG Oral Tablet",
        "gabapentin 250 MG/5ML Oral Solution",
        "gabapentin 50 MG/ML Oral Solution",
        "{9 (Once-Daily gabapentin 300 MG Oral Tablet) / 24 (Once-Daily gabapentin 600 MG "
        "Oral Tablet) } Pack",
    ],
)
def test_count_units_without_one_strength_are_unknown(product):
    assert daily_dose_mg([dosage(quantity(1, "tablet"), daily(3))], product) is None


def test_a_non_ucum_unit_code_falls_back_to_the_unit_text():
    """SNOMED 385055001 codes "tablet"; the unit text still says what the count is of."""
    tablet = {"value": 2, "unit": "tablet", "system": "http://snomed.info/sct", "code": "385055001"}
    assert daily_dose_mg([dosage(tablet, daily(3))], CAPSULE_300) == pytest.approx(1800)


# --- timing.code ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("QD", 300),
        ("BID", 600),
        ("TID", 900),
        ("QID", 1200),
        ("QOD", 150),
        ("Q8H", 900),
        ("Q12H", 600),
        ("HS", 300),
        ("bid", 600),
    ],
)
def test_timing_code(code, expected):
    assert daily_dose_mg([dosage(mg(300), timing_code(code))], None) == pytest.approx(expected)


def test_unknown_timing_code_is_unknown():
    assert daily_dose_mg([dosage(mg(300), timing_code("WAKE"))], None) is None


# --- several instructions -------------------------------------------------------------------


def test_several_instructions_add_up():
    morning = dosage(mg(300), timing_code("AM"))
    night = dosage(mg(600), timing_code("HS"))
    assert daily_dose_mg([morning, night], CAPSULE_300) == pytest.approx(900)


def test_structured_and_text_instructions_add_up():
    morning = dosage(mg(300), daily(1))
    night = dosage(text="600 mg at bedtime")
    assert daily_dose_mg([morning, night], None) == pytest.approx(900)


def test_one_unreadable_instruction_makes_the_total_unknown():
    readable = dosage(mg(300), daily(3))
    unreadable = dosage(text="as directed")
    assert daily_dose_mg([readable, unreadable], None) is None


def test_no_instructions_is_unknown():
    assert daily_dose_mg([], CAPSULE_300) is None


# --- free text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("300 mg three times daily", 900),
        ("300mg TID", 900),
        ("300 mg tid", 900),
        ("300 mg t.i.d.", 900),
        ("1 capsule (300 mg) by mouth at bedtime", 300),
        ("75 mg twice a day", 150),
        ("75 mg BID", 150),
        ("600 mg every other day", 300),
        ("300 mg every 8 hours", 900),
        ("Take 600 mg by mouth 3 times a day", 1800),
        ("300 mg four times a day", 1200),
        ("300 mg once daily", 300),
        ("300 mg nightly", 300),
        ("Gabapentin 300 mg daily", 300),
        ("300 mg by mouth daily at bedtime", 300),  # "daily" and "at bedtime": one time a day
        ("1,200 mg three times daily", 3600),
    ],
)
def test_text_sig(text, expected):
    assert daily_dose_mg([dosage(text=text)], None) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "300 mg in the morning and 600 mg at night",  # two amounts
        "300 mg",  # no frequency
        "300 three times daily",  # no unit
        "take as directed",
        "5 mL three times daily",  # a volume, not a mass
        "",
    ],
)
def test_ambiguous_text_is_unknown(text):
    assert daily_dose_mg([dosage(text=text)], None) is None


def test_text_dose_range_is_unknown_or_its_high_end():
    found = daily_dose_mg([dosage(text="300-600 mg at bedtime")], None)
    assert found is None or found == pytest.approx(600)


@pytest.mark.parametrize(
    ("text", "total"),
    [
        ("300 mg in the morning and at bedtime", 600),
        ("300 mg twice daily and 300 mg at bedtime", 900),
    ],
)
def test_text_with_two_frequencies_is_unknown(text, total):
    """Two doses a day written as two phrases: reading one phrase alone under-counts the
    dose, which could pass a dose above the label limit. Unknown (or the true total)."""
    found = daily_dose_mg([dosage(text=text)], None)
    assert found is None or found == pytest.approx(total)


def test_thousands_separator_is_not_read_as_a_smaller_dose():
    """ "1,200 mg" must not be read as 200 mg (a sixfold under-estimate of the daily dose)."""
    found = daily_dose_mg([dosage(text="1,200 mg three times daily")], None)
    assert found is None or found == pytest.approx(3600)


# --- structured but unusable ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dose", "timing"),
    [
        (mg(300), None),  # no timing
        (mg(300), {"repeat": {"frequency": 3}}),  # no period
        (mg(300), repeat(3, 1, "fortnight")),  # unknown period unit
        (quantity(5, "mL", "mL"), daily(3)),  # volume
        (quantity(300, None), daily(3)),  # no unit
        (quantity(-300, "mg", "mg"), daily(3)),  # negative
        (quantity(1, "puff"), daily(3)),  # unknown count unit
    ],
)
def test_unusable_structure_without_text_is_unknown(dose, timing):
    assert daily_dose_mg([dosage(dose, timing)], CAPSULE_300) is None


def test_unusable_structure_falls_back_to_text():
    found = daily_dose_mg([dosage(quantity(5, "mL", "mL"), daily(3), text="300 mg TID")], None)
    assert found == pytest.approx(900)


# --- product strength -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product", "expected"),
    [
        ("gabapentin 300 MG Oral Capsule", 300),
        ("gabapentin 600 MG Oral Tablet", 600),
        ("24 HR pregabalin 82.5 MG Extended Release Oral Tablet", 82.5),
        ("gabapentin enacarbil 600 MG Extended Release Oral Tablet [Horizant]", 600),
        ("gabapentin 300 mg capsule", 300),
        ("carbidopa 25 MG / levodopa 100 MG Oral Tablet", None),
        ("gabapentin 250 MG/5ML Oral Solution", None),
        ("gabapentin", None),
        (None, None),
        ("", None),
    ],
)
def test_product_strength_mg(product, expected):
    assert product_strength_mg(product) == expected


# --- dose bands -----------------------------------------------------------------------------


def band(min_clearance: float, max_daily: float = 600, **changes: Any) -> dict[str, Any]:
    return {
        "clearance": f"{min_clearance} mL/min or more",
        "min_clearance": min_clearance,
        "max_daily_mg": max_daily,
        "suggested_dose_mg": 100,
        "suggested_times_per_day": 1,
        "label_note": "label: 100 mg once daily",
        **changes,
    }


def drug(*bands: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "Drug",
        "value_set": "gabapentin",
        "bands": list(bands),
    }


def test_valid_drug_dosing():
    dosing = DrugDosing.model_validate(drug(band(60), band(30, inclusive=False), band(0)))
    assert [x.min_clearance for x in dosing.bands] == [60, 30, 0]
    assert dosing.dialysis is None


@pytest.mark.parametrize(
    "bands",
    [
        [band(30), band(60), band(0)],  # not descending
        [band(60), band(30)],  # does not end at 0
        [band(0), band(60)],
    ],
)
def test_bands_must_descend_and_end_at_zero(bands):
    with pytest.raises(ValidationError, match="descend"):
        DrugDosing.model_validate(drug(*bands))


def test_suggested_dose_above_the_band_maximum_is_rejected():
    with pytest.raises(ValidationError, match="exceeds"):
        DoseBand.model_validate(
            band(0, max_daily=300, suggested_dose_mg=200, suggested_times_per_day=2)
        )


def test_suggested_dose_at_the_band_maximum_is_accepted():
    found = DoseBand.model_validate(
        band(0, max_daily=300, suggested_dose_mg=150, suggested_times_per_day=2)
    )
    assert found.max_daily_mg == 300


def test_unknown_dosing_field_is_rejected():
    with pytest.raises(ValidationError):
        DrugDosing.model_validate(drug(band(0)) | {"max_mg": 3600})


def test_inclusive_and_exclusive_edges():
    dosing = DrugDosing.model_validate(
        drug(band(60, 300), band(30, 200, inclusive=False), band(0, 100))
    )
    assert dosing.band(60).max_daily_mg == 300
    assert dosing.band(59.99).max_daily_mg == 200
    assert dosing.band(30.01).max_daily_mg == 200
    assert dosing.band(30).max_daily_mg == 100
    assert dosing.band(0).max_daily_mg == 100


# --- the shipped tables ---------------------------------------------------------------------

GABAPENTIN = b.KNOWLEDGE.dosing["gabapentin"]
PREGABALIN = b.KNOWLEDGE.dosing["pregabalin"]
ENACARBIL = b.KNOWLEDGE.dosing["gabapentin-enacarbil"]


@pytest.mark.parametrize(
    ("clearance", "limit"),
    [
        (120, 3600),
        (60, 3600),
        (59.9, 1400),
        (45, 1400),
        (30.01, 1400),
        (30, 700),  # the label's 29-30 gap takes the lower row
        (29.5, 700),
        (15.01, 700),
        (15, 300),
        (5, 300),
        (0, 300),
    ],
)
def test_gabapentin_bands(clearance, limit):
    assert GABAPENTIN.band(clearance).max_daily_mg == limit


def test_gabapentin_dialysis_row():
    assert GABAPENTIN.dialysis is not None
    assert GABAPENTIN.dialysis.max_daily_mg == 300


@pytest.mark.parametrize(
    ("clearance", "limit"),
    [
        (90, 600),
        (60, 600),
        (59.99, 300),
        (45, 300),
        (30.01, 300),
        (30, 150),
        (20, 150),
        (15, 150),  # "15-30" includes 15: "<15" does not
        (14.99, 75),
        (10, 75),
    ],
)
def test_pregabalin_bands(clearance, limit):
    assert PREGABALIN.band(clearance).max_daily_mg == limit


def test_pregabalin_dialysis_row():
    assert PREGABALIN.dialysis is not None
    assert PREGABALIN.dialysis.max_daily_mg == 75


@pytest.mark.parametrize(
    ("clearance", "limit"),
    [(60, 1200), (59, 600), (30, 600), (29, 300), (15, 300), (14.9, 150), (0, 150)],
)
def test_enacarbil_bands(clearance, limit):
    assert ENACARBIL.band(clearance).max_daily_mg == limit


def test_enacarbil_has_no_dialysis_row():
    assert ENACARBIL.dialysis is None


def test_shipped_tables_use_their_value_sets():
    assert GABAPENTIN.value_set == "gabapentin"
    assert PREGABALIN.value_set == "pregabalin"
    assert ENACARBIL.value_set == "gabapentin-enacarbil"
