"""Kidney function for drug dosing: Cockcroft-Gault clearance when weight is known, else eGFR.

Drug labels give their renal dose tables by creatinine clearance (Cockcroft-Gault, mL/min),
not by eGFR normalised to 1.73 m2. With a recent weight we compute the clearance the labels
mean; without one the eGFR stands in, and the card says which was used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from cds_service.clinical.dates import age_in_years
from cds_service.clinical.egfr import Sex
from cds_service.clinical.facts import ConditionFact, LabResult
from cds_service.clinical.picture import PatientPicture

CREATININE = "creatinine"
EGFR = "egfr"
WEIGHT = "body-weight"
DIALYSIS = "dialysis"

Method = Literal["Cockcroft-Gault", "eGFR", "dialysis"]


def cockcroft_gault(age: int, weight_kg: float, creatinine_mg_dl: float, sex: Sex) -> float:
    """Creatinine clearance in mL/min: (140 - age) x weight / (72 x Scr), x 0.85 if female."""
    clearance = (140 - age) * weight_kg / (72 * creatinine_mg_dl)
    return clearance * 0.85 if sex == "female" else clearance


@dataclass(frozen=True)
class KidneyFunction:
    """What dosing reads: a clearance in mL/min (None on dialysis) and how it was found.

    A reported eGFR with a comparator (">60") is the clearance "at least 60": it places the
    patient in the row at or above that value (docs/card-topics.md, "Gabapentinoids").
    """

    method: Method
    clearance: float | None
    labs: tuple[LabResult, ...] = ()
    dialysis: ConditionFact | None = None
    comparator: str | None = None

    def describe(self) -> str:
        """ "CrCl 42 mL/min (Cockcroft-Gault)", "eGFR >60 mL/min/1.73 m2", "on dialysis"."""
        if self.clearance is None:
            return "on dialysis"
        value = f"{self.comparator or ''}{self.clearance:.0f}"
        if self.method == "Cockcroft-Gault":
            return f"CrCl {value} mL/min (Cockcroft-Gault)"
        return f"eGFR {value} mL/min/1.73 m2"

    def phrase(self) -> str:
        """The kidney function as a sentence continues with it: "at CrCl 42 mL/min
        (Cockcroft-Gault)", "at eGFR >60 mL/min/1.73 m2", "on dialysis"."""
        return self.describe() if self.clearance is None else f"at {self.describe()}"

    @property
    def band_clearance(self) -> float | None:
        """The clearance that picks the label row: just above the value for ">60", so that
        a row "over 60" covers it."""
        if self.clearance is None:
            return None
        return self.clearance + 1e-6 if self.comparator == ">" else self.clearance


#: Said of a patient whose kidney function is not known (no recent creatinine or eGFR).
UNKNOWN_PHRASE = "with kidney function not known"


def kidney_function(picture: PatientPicture, within: timedelta) -> KidneyFunction | None:
    """The patient's kidney function for dosing, or None when nothing recent tells it."""
    dialysis = picture.active_conditions(DIALYSIS)
    if dialysis:
        return KidneyFunction("dialysis", None, dialysis=dialysis[0])
    creatinine = picture.latest(CREATININE, within)
    weight = picture.latest(WEIGHT, within)
    if (
        creatinine is not None
        and weight is not None
        and picture.sex is not None
        and picture.birth_date is not None
        and creatinine.value > 0
        and not creatinine.comparator
    ):
        age = age_in_years(picture.birth_date, creatinine.effective.date())
        if age >= 18:
            clearance = cockcroft_gault(age, weight.value, creatinine.value, picture.sex)
            return KidneyFunction("Cockcroft-Gault", clearance, (creatinine, weight))
    egfr = picture.latest(EGFR, within)
    if egfr is None or egfr.comparator not in (None, ">", ">="):
        return None  # "<15" says how low, not where: the row cannot be chosen
    labs = (egfr, *egfr.derived_from)
    return KidneyFunction("eGFR", egfr.value, labs, comparator=egfr.comparator)
