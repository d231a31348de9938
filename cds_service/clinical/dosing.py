"""Total daily dose in mg from FHIR Dosage, and the label's dose limits by kidney function.

A dose is computed only when the data say it unambiguously: structured ``doseAndRate`` with a
mass unit (or a count of tablets of a product whose name carries one strength) and a timing,
or a text such as "300 mg three times daily". Anything else is "unknown", never a guess: the
gabapentinoid card then says it could not check the dose.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.terminology import UCUM
from cds_service.clinical.text import normalise

#: Unit texts that count dose forms: the dose is the count times the product's strength.
#: Any UCUM annotation alone (``{tbl}``, ``{pill}`` as the CDS Hooks Sandbox writes it,
#: ``{puff}``, ...) is a count too (UCUM: an annotation alone is the unit 1).
_COUNT_UNITS = frozenset(
    {"tablet", "tablets", "tab", "tabs", "tbl", "capsule", "capsules", "cap", "caps", "pill",
     "pills", "caplet", "caplets", "each"}
)  # fmt: skip
#: Words naming a solid dose form. The UCUM unit ``1``, or a value with no unit at all (as
#: Synthea writes ``{"value": 1}``), is a count of the product's strength when the product
#: or the instruction names one of them ("gabapentin 300 MG Oral Capsule", "Take 1 capsule").
_COUNT_FORMS = frozenset({"tablet", "tablets", "tab", "tabs", "capsule", "capsules", "cap",
                          "caps", "pill", "pills", "caplet", "caplets"})  # fmt: skip
_WORDS = re.compile(r"[a-z]+")
#: The most dose forms a unit-less value may count per dose (more is read as milligrams
#: written without a unit, and the dose stays unknown).
MAX_UNITLESS_COUNT = 10
_MASS_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001, "µg": 0.001}
#: Days per UCUM period unit (Timing.repeat.periodUnit).
_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0}
#: HL7 v3 GTSAbbreviation timing codes (Timing.code) -> administrations per day.
_TIMING_CODES = {
    "QD": 1.0, "BID": 2.0, "TID": 3.0, "QID": 4.0, "AM": 1.0, "PM": 1.0, "QOD": 0.5,
    "Q4H": 6.0, "Q6H": 4.0, "Q8H": 3.0, "Q12H": 2.0, "HS": 1.0, "QHS": 1.0,
}  # fmt: skip
_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*MG\b(\s*/\s*\d*(?:\.\d+)?\s*(?:ML|L)\b)?", re.IGNORECASE)
_TEXT_MG = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*mg\b", re.IGNORECASE)
#: Frequency phrases in free-text sigs, most specific first.
_FREQUENCY_PHRASES: tuple[tuple[str, float], ...] = (
        (r"\bevery other day\b|\bq\.?o\.?d\b|\balternate days\b", 0.5),
        (r"\bfour times (a |per )?day\b|\b4 times (a |per )?day\b|\bq\.?i\.?d\b|"
         r"\bevery 6 hours\b|\bq6h\b", 4.0),
        (r"\bthree times (a |per )?day\b|\b3 times (a |per )?day\b|\bthree times daily\b|"
         r"\b3 times daily\b|\bt\.?i\.?d\b|\bevery 8 hours\b|\bq8h\b", 3.0),
        (r"\btwice (a |per )?day\b|\btwice daily\b|\btwo times (a |per )?day\b|"
         r"\b2 times (a |per )?day\b|\b2 times daily\b|\bb\.?i\.?d\b|\bevery 12 hours\b|"
         r"\bq12h\b", 2.0),
        (r"\bonce (a |per )?day\b|\bonce daily\b|\bdaily\b|\bevery day\b|\bq\.?d\b|"
         r"\bat bedtime\b|\bnightly\b|\bq\.?h\.?s\b|\bevery (morning|evening|night)\b|"
         r"\bin the (morning|evening)\b", 1.0),
)  # fmt: skip
#: One pattern, one named group per phrase: a scan finds each phrase once, the most
#: specific first at any position ("twice daily" is not also "daily").
_TEXT_FREQUENCY = re.compile(
    "|".join(f"(?P<f{i}>{pattern})" for i, (pattern, _) in enumerate(_FREQUENCY_PHRASES)),
    re.IGNORECASE,
)


def daily_dose_mg(dosages: Sequence[fr.Dosage], product: str | None) -> float | None:
    """The most a patient takes per day under `dosages`, in mg; None when not determinable.

    Several instructions (morning and evening doses) add up. A dose range counts at its high
    end, and ``frequencyMax`` over ``frequency``: the limit check must not pass a dose the
    instruction allows.
    """
    if not dosages:
        return None
    product = normalise(product) if product else product
    total = 0.0
    for dosage in dosages:
        per_day = _structured(dosage, product)
        if per_day is None:
            per_day = _from_text(normalise(dosage.text) if dosage.text else None)
        if per_day is None:
            return None
        total += per_day
    return total


def product_strength_mg(product: str | None) -> float | None:
    """The strength in mg named by a product ("gabapentin 300 MG Oral Capsule"); one only."""
    if not product:
        return None
    found = _STRENGTH.findall(normalise(product))
    if any(per_volume for _, per_volume in found):  # a solution: mg per mL is not a dose form
        return None
    strengths = {float(amount) for amount, _ in found}
    return strengths.pop() if len(strengths) == 1 else None


def _structured(dosage: fr.Dosage, product: str | None) -> float | None:
    per_dose = next(
        (
            mg
            for rate in dosage.doseAndRate
            if (mg := _dose_mg(rate, product, dosage.text)) is not None
        ),
        None,
    )
    times = _times_per_day(dosage.timing)
    if per_dose is None or times is None:
        return None
    return per_dose * times


def _dose_mg(rate: fr.DoseAndRate, product: str | None, text: str | None) -> float | None:
    quantity = rate.doseQuantity or (rate.doseRange.high if rate.doseRange else None)
    if quantity is None or quantity.value is None or quantity.value < 0:
        return None
    ucum = quantity.code if quantity.system in (None, UCUM) else None
    units = [u for u in (normalise(u).strip().lower() for u in (ucum, quantity.unit) if u) if u]
    counted = False
    for unit in units:
        if unit in _MASS_MG:
            return quantity.value * _MASS_MG[unit]
        counted = counted or is_count_unit(unit)
    if not counted and set(units) <= {"1"} and _names_a_form(product, text):
        # UCUM "1" or no unit: a count when the product or the sig names a tablet; a bare
        # 300 is milligrams typed without a unit, not 300 capsules, and stays unknown.
        counted = bool(units) or quantity.value <= MAX_UNITLESS_COUNT
    if not counted:
        return None
    strength = product_strength_mg(product)
    return None if strength is None else quantity.value * strength


def is_count_unit(unit: str) -> bool:
    """A unit that counts dose forms: a count word, or a UCUM annotation alone (``{pill}``)."""
    unit = unit.strip().lower()
    if unit.startswith("{") and unit.endswith("}") and unit.count("{") == 1:
        return True
    return unit in _COUNT_UNITS


def _names_a_form(*texts: str | None) -> bool:
    return any(_COUNT_FORMS & set(_WORDS.findall(normalise(t).lower())) for t in texts if t)


def _times_per_day(timing: fr.Timing | None) -> float | None:
    if timing is None:
        return None
    repeat = timing.repeat
    if repeat is not None and repeat.period and repeat.periodUnit in _PERIOD_DAYS:
        frequency = repeat.frequencyMax or repeat.frequency or 1
        return frequency / (repeat.period * _PERIOD_DAYS[repeat.periodUnit])
    if timing.code is not None:
        for code in (c.code for c in timing.code.coding if c.code):
            if code.upper() in _TIMING_CODES:
                return _TIMING_CODES[code.upper()]
    return None


def _from_text(text: str | None) -> float | None:
    """ "300 mg three times daily", "1 capsule (300 mg) by mouth at bedtime": exactly one mg
    amount and one frequency phrase, or nothing ("300 mg twice daily and 300 mg at bedtime"
    is two instructions in one text, which we do not add up)."""
    if not text:
        return None
    amounts = _TEXT_MG.findall(text)
    phrases = [
        (m.group(0).lower(), _FREQUENCY_PHRASES[int((m.lastgroup or "f0")[1:])][1])
        for m in _TEXT_FREQUENCY.finditer(text)
    ]
    if len(phrases) == 2 and ("daily", 1.0) in phrases and phrases[0][1] == phrases[1][1]:
        phrases.remove(("daily", 1.0))  # "daily at bedtime" is one time a day
    if len(amounts) != 1 or len(phrases) != 1:
        return None
    return float(amounts[0].replace(",", "")) * phrases[0][1]


class DoseBand(BaseModel):
    """One row of a label's renal dosing table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clearance: str = Field(min_length=1)
    """The row's kidney function as the label prints it ("30 to 59 mL/min")."""
    min_clearance: float = Field(ge=0)
    inclusive: bool = True
    """Whether a clearance equal to ``min_clearance`` falls in this row."""
    recommended: bool = True
    """False where the label says the product should not be given (Gralise below CrCl 30):
    the card then offers to cancel the order, not to adjust it."""
    max_daily_mg: float | None = Field(default=None, gt=0)
    suggested_dose_mg: float | None = Field(default=None, gt=0)
    suggested_times_per_day: float | None = Field(default=None, gt=0)
    proportional_below: float | None = Field(default=None, gt=0)
    """Below this clearance the limit and the suggested dose shrink in proportion to the
    clearance (Neurontin below CrCl 15: CrCl 7.5 takes half the dose of CrCl 15)."""
    label_note: str = Field(min_length=1)
    """What the label says for this row, shown with the suggested dose."""

    def covers(self, clearance: float) -> bool:
        return clearance >= self.min_clearance if self.inclusive else clearance > self.min_clearance

    def limit_mg(self, clearance: float | None) -> float:
        """The row's daily maximum at `clearance` (reduced in proportion where it says so)."""
        assert self.max_daily_mg is not None
        return self.max_daily_mg * self._fraction(clearance)

    def suggested_mg(self, clearance: float | None) -> float:
        """The suggested single dose at `clearance`."""
        assert self.suggested_dose_mg is not None
        return self.suggested_dose_mg * self._fraction(clearance)

    def _fraction(self, clearance: float | None) -> float:
        below = self.proportional_below
        if below is None or clearance is None or clearance >= below:
            return 1.0
        return max(clearance, 0.0) / below

    @model_validator(mode="after")
    def _suggestion_inside(self) -> DoseBand:
        if not self.recommended:
            if self.max_daily_mg or self.suggested_dose_mg or self.suggested_times_per_day:
                raise ValueError(f"{self.clearance}: a row not recommended has no dose")
            return self
        if None in (self.max_daily_mg, self.suggested_dose_mg, self.suggested_times_per_day):
            raise ValueError(
                f"{self.clearance}: needs max_daily_mg, suggested_dose_mg and "
                "suggested_times_per_day (or recommended = false)"
            )
        assert self.max_daily_mg and self.suggested_dose_mg and self.suggested_times_per_day
        if self.suggested_dose_mg * self.suggested_times_per_day > self.max_daily_mg + 1e-9:
            raise ValueError(f"{self.clearance}: the suggested dose exceeds the band's maximum")
        return self


class DrugDosing(BaseModel):
    """One product's label limits: its absolute daily maximum, its rows by creatinine
    clearance, its row on haemodialysis, and the label they come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=20)
    """How the card names the product ("Gralise", "Pregabalin")."""
    description: str = Field(min_length=1)
    """The product in words for the card's detail ("once-daily gabapentin (Gralise)")."""
    value_set: str = Field(min_length=1)
    """Medications in this value set are this product; products are tried in file order,
    so a specific product (Gralise) comes before its ingredient (gabapentin)."""
    max_daily_mg: float = Field(gt=0)
    """The label's absolute daily maximum, whatever the kidney function."""
    source_label: str = Field(min_length=1)
    source_url: str = Field(pattern=r"^https://")
    instead: str = Field(min_length=1)
    """What the label says to do where it does not recommend the product."""
    bands: tuple[DoseBand, ...] = Field(min_length=1)
    """Rows from the best kidney function down; the first row that covers a clearance applies."""
    dialysis: DoseBand | None = None
    """The row for haemodialysis; None when the label does not recommend the drug on dialysis."""

    @model_validator(mode="after")
    def _ordered(self) -> DrugDosing:
        minima = [band.min_clearance for band in self.bands]
        if minima != sorted(minima, reverse=True) or minima[-1] != 0:
            raise ValueError(f"{self.name}: bands must descend and end at clearance 0")
        for band in (*self.bands, self.dialysis):
            if band is not None and (band.max_daily_mg or 0) > self.max_daily_mg:
                raise ValueError(f"{self.name}: {band.clearance} is above the absolute maximum")
        return self

    def band(self, clearance: float) -> DoseBand:
        return next(b for b in self.bands if b.covers(clearance))
