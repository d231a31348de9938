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
        "description": "a drug",
        "value_set": "gabapentin",
        "max_daily_mg": 3600,
        "source_label": "Drug label",
        "source_url": "https://example.org/label",
        "instead": "Consider another.",
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

GABAPENTIN = b.KNOWLEDGE.dosing["neurontin"]
PREGABALIN = b.KNOWLEDGE.dosing["lyrica"]
ENACARBIL = b.KNOWLEDGE.dosing["horizant"]
GRALISE = b.KNOWLEDGE.dosing["gralise"]
LYRICA_CR = b.KNOWLEDGE.dosing["lyrica-cr"]


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
        (14, 280),  # below 15: the 15 mL/min limit in proportion to the clearance
        (7.5, 150),  # the label's example: half the dose of CrCl 15
        (5, 100),
        (0, 0),
    ],
)
def test_gabapentin_bands(clearance, limit):
    assert GABAPENTIN.band(clearance).limit_mg(clearance) == pytest.approx(limit)


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
    assert GRALISE.value_set == "gabapentin-once-daily"
    assert LYRICA_CR.value_set == "pregabalin-extended-release"


def test_products_are_tried_most_specific_first():
    """Gralise before gabapentin, Lyrica CR before pregabalin, Horizant before both."""
    order = [d.value_set for d in b.KNOWLEDGE.dosing.values()]
    assert order.index("gabapentin-once-daily") < order.index("gabapentin")
    assert order.index("gabapentin-enacarbil") < order.index("gabapentin")
    assert order.index("pregabalin-extended-release") < order.index("pregabalin")


@pytest.mark.parametrize(
    ("product", "maximum"),
    [(GABAPENTIN, 3600), (GRALISE, 1800), (ENACARBIL, 1200), (PREGABALIN, 600), (LYRICA_CR, 660)],
)
def test_absolute_maximum_per_product(product, maximum):
    assert product.max_daily_mg == maximum


@pytest.mark.parametrize(
    ("clearance", "limit"),
    [(90, 1800), (60, 1800), (59.9, 1800), (30, 1800), (29.99, None), (0, None)],
)
def test_gralise_bands_not_below_30(clearance, limit):
    band = GRALISE.band(clearance)
    assert band.recommended is (limit is not None)
    if limit is not None:
        assert band.limit_mg(clearance) == limit


def test_gralise_and_lyrica_cr_are_not_for_haemodialysis():
    assert GRALISE.dialysis is None
    assert LYRICA_CR.dialysis is None


@pytest.mark.parametrize(
    ("clearance", "limit"),
    [(90, 660), (60, 660), (59.9, 330), (30, 330), (29.99, None), (10, None)],
)
def test_lyrica_cr_has_its_own_table_and_not_below_30(clearance, limit):
    band = LYRICA_CR.band(clearance)
    assert band.recommended is (limit is not None)
    if limit is not None:
        assert band.limit_mg(clearance) == limit


def test_every_product_cites_its_own_label():
    labels = {d.name: d.source_label for d in b.KNOWLEDGE.dosing.values()}
    assert "Neurontin" in labels["Gabapentin"]
    assert "Gralise" in labels["Gralise"]
    assert "Horizant" in labels["Horizant"]
    assert labels["Pregabalin"].startswith("Lyrica (pregabalin)")
    assert "Lyrica CR" in labels["Lyrica CR"]
    assert len({d.source_url for d in b.KNOWLEDGE.dosing.values()}) == 5


def test_a_band_not_recommended_carries_no_dose():
    with pytest.raises(ValidationError, match="no dose"):
        DoseBand.model_validate(band(0, recommended=False))


def test_a_band_above_the_absolute_maximum_is_rejected():
    with pytest.raises(ValidationError, match="absolute maximum"):
        DrugDosing.model_validate(drug(band(0, max_daily=4000)))


# --- the forms real orders use (docs/card-topics.md, "Gabapentinoids") ----------------------

PREGABALIN_150 = "pregabalin 150 MG Oral Capsule"


@pytest.mark.parametrize(
    ("dose", "product", "text", "expected"),
    [
        # CDS Hooks Sandbox: every dose a count of {pill}, UCUM system, no unit text.
        (quantity(1, None, "{pill}"), PREGABALIN_150, None, 450),
        (quantity(2, None, "{pill}"), PREGABALIN_150, None, 900),
        # Synthea: {"value": 1} and nothing else; the RxNorm display names the capsule.
        (quantity(1, None), CAPSULE_300, None, 900),
        # Epic-style: the unit text says the form, the code is an annotation or absent.
        (quantity(1, "capsule", "{capsule}"), CAPSULE_300, None, 900),
        (quantity(1, "Cap"), "GABAPENTIN 300 MG PO CAPS", None, 900),
        (quantity(2, "tablet", "{tbl}"), "pregabalin (LYRICA) 75 mg capsule", None, 450),
        # UCUM 1 with a tablet/capsule unit text, or with the form in the product only.
        (quantity(1, "tablet", "1"), TABLET_600, None, 1800),
        (quantity(1, None, "1"), TABLET_600, None, 1800),
        # Any annotation alone is a count: {cap}, {puff}, {Each}.
        (quantity(1, None, "{cap}"), CAPSULE_300, None, 900),
        (quantity(1, None, "{puff}"), CAPSULE_300, None, 900),
        (quantity(1, None, "{Each}"), CAPSULE_300, None, 900),
        # A unit-less count with the form named only in the sig.
        (quantity(1, None), "gabapentin 300 MG", "Take 1 capsule three times a day", 900),
        # Per-product strengths: Lyrica CR 82.5 mg, Gralise 600 mg, Horizant 600 mg.
        (quantity(2, None, "{pill}"), "24 HR pregabalin 82.5 MG Extended Release Oral Tablet",
         None, 495),
        (quantity(1, None, "{pill}"), "Once-Daily gabapentin 600 MG Oral Tablet", None, 1800),
        (quantity(1, None, "{pill}"),
         "gabapentin enacarbil 600 MG Extended Release Oral Tablet", None, 1800),
    ],
)  # fmt: skip
def test_count_forms_of_real_orders(dose, product, text, expected):
    found = daily_dose_mg([dosage(dose, daily(3), text=text)], product)
    assert found == pytest.approx(expected)


@pytest.mark.parametrize(
    ("dose", "product"),
    [
        (quantity(300, None), CAPSULE_300),  # a bare 300 is milligrams without a unit
        (quantity(11, None), CAPSULE_300),  # past the unit-less count bound
        (quantity(1, None), "gabapentin 300 MG"),  # no form named anywhere
        (quantity(1, None, "1"), "gabapentin 300 MG"),
        (quantity(1, None, "{pill}"), "gabapentin 50 MG/ML Oral Solution"),  # mg/mL: no count
        (quantity(1, "mL", "mL"), CAPSULE_300),
    ],
)
def test_counts_that_cannot_be_read_stay_unknown(dose, product):
    assert daily_dose_mg([dosage(dose, daily(3))], product) is None


def test_unit_less_count_bound_is_inclusive():
    assert daily_dose_mg([dosage(quantity(10, None), daily(1))], CAPSULE_300) == 3000


@pytest.mark.parametrize(
    "product",
    [
        "gabapentin\u200b 300 MG Oral Capsule",  # zero-width space
        "ｇａｂａｐｅｎｔｉｎ ３００ ＭＧ Oral Capsule",  # fullwidth letters and digits
        "gabapentin 300\u00a0MG Oral Capsule",  # no-break space
    ],
)
def test_strength_is_read_through_unicode_disguises(product):
    assert product_strength_mg(product) == 300
