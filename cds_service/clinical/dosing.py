"""Total daily dose in mg from FHIR Dosage, and the label's dose limits by kidney function.

A dose is computed only when the data say it unambiguously: structured ``doseAndRate`` with a
mass unit (or a count of tablets of a product whose name carries one strength) and a timing,
or a text such as "300 mg three times daily". Anything else is "unknown", never a guess: the
gabapentinoid card then says it could not check the dose.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.terminology import UCUM
from cds_service.clinical.text import normalise
from cds_service.clinical.text_scan import (
    PhraseTable,
    Steps,
    Token,
    boundary_after,
    literal,
    tokens,
)

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
#: Longest sig and product name read (fhir_read drops longer sigs); the dose is then
#: unknown, never guessed.
MAX_TEXT_CHARS = fr.MAX_SIG_CHARS


def _dotted(letters: str) -> list[str]:
    """ "tid", "t.id", "ti.d", "t.i.d": abbreviations with or without their dots."""
    variants = [letters[0]]
    for letter in letters[1:]:
        variants = [v + gap + letter for v in variants for gap in ("", ".")]
    return variants


def _per_day(words: str) -> list[str]:
    """ "three times day", "three times a day", "three times per day"."""
    return [f"{words} {middle}day" for middle in ("a ", "per ", "")]


#: Frequency phrases in free-text sigs, most specific first, with their times per day.
_FREQUENCY_PHRASES: tuple[tuple[list[str], float], ...] = (
    (["every other day", *_dotted("qod"), "alternate days"], 0.5),
    ([*_per_day("four times"), *_per_day("4 times"), *_dotted("qid"), "every 6 hours", "q6h"],
     4.0),
    ([*_per_day("three times"), *_per_day("3 times"), "three times daily", "3 times daily",
      *_dotted("tid"), "every 8 hours", "q8h"], 3.0),
    ([*_per_day("twice"), "twice daily", *_per_day("two times"), *_per_day("2 times"),
      "2 times daily", *_dotted("bid"), "every 12 hours", "q12h"], 2.0),
    ([*_per_day("once"), "once daily", "daily", "every day", *_dotted("qd"), "at bedtime",
      "nightly", *_dotted("qhs"), "every morning", "every evening", "every night",
      "in the morning", "in the evening"], 1.0),
)  # fmt: skip
#: Each phrase exactly as written (one space is one space), whole words, any case; at one
#: position the first phrase listed wins ("twice daily" is not also "daily").
_FREQUENCIES = PhraseTable(
    [(literal(text), (text, per_day)) for texts, per_day in _FREQUENCY_PHRASES for text in texts]
)


def daily_dose_mg(dosages: Sequence[fr.Dosage], product: str | None) -> float | None:
    """The most a patient takes per day under `dosages`, in mg; None when not determinable.

    Several instructions (morning and evening doses) add up. A dose range counts at its high
    end, and ``frequencyMax`` over ``frequency``: the limit check must not pass a dose the
    instruction allows.
    """
    if not dosages or len(dosages) > fr.MAX_DOSAGES:
        return None
    product = normalise(product) if product else product
    total = 0.0
    for dosage in dosages:
        per_day = _structured(dosage, product)
        if per_day is None:
            per_day = dose_from_text(dosage.text)
        if per_day is None:
            return None
        total += per_day
    return total


def product_strength_mg(product: str | None) -> float | None:
    """The strength in mg named by a product ("gabapentin 300 MG Oral Capsule"); one only.
    A solution (mg per mL) has no strength per dose form. Names longer than MAX_TEXT_CHARS
    are not read."""
    if not product or len(product) > MAX_TEXT_CHARS:
        return None
    return strength_in(product)


def strength_in(product: str, steps: Steps | None = None) -> float | None:
    """product_strength_mg without the length cap; the work is counted in `steps`."""
    found = tokens(product, steps)
    strengths: set[float] = set()
    for amount, end in _mg_amounts(found, steps):
        if _per_volume(found, end):
            return None
        strengths.add(amount)
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
    """Whether a product name or sig names a solid dose form (whole words, any case)."""
    return any(
        token.kind == "word" and token.text in _COUNT_FORMS
        for text in texts
        if text
        for token in tokens(text)
    )


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


def dose_from_text(text: str | None) -> float | None:
    """ "300 mg three times daily", "1 capsule (300 mg) by mouth at bedtime": exactly one mg
    amount and one frequency phrase, or nothing ("300 mg twice daily and 300 mg at bedtime"
    is two instructions in one text, which we do not add up). A text longer than
    MAX_TEXT_CHARS is not read."""
    if not text or len(text) > MAX_TEXT_CHARS:
        return None
    return sig_mg_per_day(text)


def sig_mg_per_day(text: str, steps: Steps | None = None) -> float | None:
    """dose_from_text without the length cap: linear in the text (see text_scan), the work
    counted in `steps`."""
    found = tokens(text, steps)
    amounts = [amount for amount, _ in _mg_amounts(found, steps)]
    phrases = _FREQUENCIES.leftmost(found, steps)
    if len(phrases) == 2 and ("daily", 1.0) in phrases and phrases[0][1] == phrases[1][1]:
        phrases.remove(("daily", 1.0))  # "daily at bedtime" is one time a day
    if len(amounts) != 1 or len(phrases) != 1:
        return None
    return amounts[0] * phrases[0][1]


def _mg_amounts(found: list[Token], steps: Steps | None) -> list[tuple[float, int]]:
    """Each number followed by "mg" (whole word, any case, spaces allowed between), with the
    index after "mg". A number is digits, "1,200" (groups of three), or "82.5"; anything
    else joined by commas or dots ("1,20", "1.5.5") is no amount at all."""
    amounts: list[tuple[float, int]] = []
    index = 0
    while index < len(found):
        if steps is not None:
            steps.add()
        if found[index].kind != "number":
            index += 1
            continue
        value, index = _number(found, index, steps)
        unit = index + 1 if index < len(found) and found[index].kind == "space" else index
        if (
            value is not None
            and unit < len(found)
            and found[unit] == _MG
            and boundary_after(found, unit + 1)
        ):
            amounts.append((value, unit + 1))
            index = unit + 1
    return amounts


def _number(found: list[Token], index: int, steps: Steps | None) -> tuple[float | None, int]:
    """The number written from token `index` (a number token) on, and the index after it."""
    groups = [found[index].text]
    marks: list[str] = []
    end = index + 1
    while (
        end + 1 < len(found)
        and found[end].kind == "mark"
        and found[end].text in ",."
        and found[end + 1].kind == "number"
    ):
        if steps is not None:
            steps.add(2)
        marks.append(found[end].text)
        groups.append(found[end + 1].text)
        end += 2
    if not marks:
        return float(groups[0]), end
    if marks == ["."]:
        return float(f"{groups[0]}.{groups[1]}"), end
    thousands = len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])
    if set(marks) == {","} and thousands:
        return float("".join(groups)), end
    return None, end


def _per_volume(found: list[Token], index: int) -> bool:
    """Whether "/ 5 mL", "/mL", "/ 0.5 L" follows token `index` (a strength per volume)."""
    at = _skip_space(found, index)
    if not (at < len(found) and found[at] == _SLASH):
        return False
    at = _skip_space(found, at + 1)
    if at < len(found) and found[at].kind == "number":
        at += 1
    if at + 1 < len(found) and found[at] == _DOT and found[at + 1].kind == "number":
        at += 2
    at = _skip_space(found, at)
    return at < len(found) and found[at] in _VOLUMES and boundary_after(found, at + 1)


def _skip_space(found: list[Token], index: int) -> int:
    return index + 1 if index < len(found) and found[index].kind == "space" else index


_MG = Token("word", "mg")
_SLASH = Token("mark", "/")
_DOT = Token("mark", ".")
_VOLUMES = frozenset({Token("word", "ml"), Token("word", "l")})


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
