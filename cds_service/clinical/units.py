"""Lab values in one canonical unit per analyte.

A value whose unit we cannot convert is refused (``None``), never guessed. Units are read
from the UCUM code when the quantity carries one, else from the human-readable unit.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Molar conversions: creatinine 88.4 umol per mg/dL; iron 0.1791 umol/L per ug/dL;
#: ferritin 2.247 pmol/L per ng/mL (the factor used by clinical laboratories).
CREATININE_UMOL_PER_MG_DL = 88.4
IRON_UMOL_PER_UG_DL = 0.1791
FERRITIN_PMOL_PER_NG_ML = 2.247
KG_PER_LB = 0.45359237

#: Canonical unit of each analyte (keyed by value-set id) and the factor that turns a
#: value in another unit into the canonical one.
CANONICAL: Mapping[str, tuple[str, Mapping[str, float]]] = {
    "ferritin": (
        "ng/mL",
        {
            "ng/ml": 1.0,
            "ug/l": 1.0,
            "µg/l": 1.0,
            "mcg/l": 1.0,
            "pmol/l": 1 / FERRITIN_PMOL_PER_NG_ML,
        },
    ),
    "transferrin-saturation": ("%", {"%": 1.0, "percent": 1.0}),
    "serum-iron": (
        "ug/dL",
        {"ug/dl": 1.0, "µg/dl": 1.0, "mcg/dl": 1.0, "umol/l": 1 / IRON_UMOL_PER_UG_DL},
    ),
    "tibc": (
        "ug/dL",
        {"ug/dl": 1.0, "µg/dl": 1.0, "mcg/dl": 1.0, "umol/l": 1 / IRON_UMOL_PER_UG_DL},
    ),
    "creatinine": (
        "mg/dL",
        {
            "mg/dl": 1.0,
            "umol/l": 1 / CREATININE_UMOL_PER_MG_DL,
            "µmol/l": 1 / CREATININE_UMOL_PER_MG_DL,
            "mmol/l": 1000 / CREATININE_UMOL_PER_MG_DL,
        },
    ),
    "egfr": (
        "mL/min/1.73 m2",
        {
            "ml/min/{1.73_m2}": 1.0,
            "ml/min/1.73m2": 1.0,
            "ml/min/1.73_m2": 1.0,
            "ml/min/1.73 m2": 1.0,
            "ml/min/{1.73m2}": 1.0,
            "ml/min/1.73m^2": 1.0,
            # Every eGFR code we accept is per 1.73 m2 by definition; "mL/min" on such a
            # code is a unit label missing its area (Synthea writes it so), not a raw GFR.
            "ml/min": 1.0,
        },
    ),
    "body-weight": (
        "kg",
        {"kg": 1.0, "g": 0.001, "[lb_av]": KG_PER_LB, "lb": KG_PER_LB, "lbs": KG_PER_LB},
    ),
    # hCG is measured in international units only: mIU/mL = IU/L (and U/L as labs write it).
    "hcg-quantitative": (
        "mIU/mL",
        {
            "miu/ml": 1.0,
            "m[iu]/ml": 1.0,
            "iu/l": 1.0,
            "[iu]/l": 1.0,
            "mu/ml": 1.0,
            "u/l": 1.0,
            "iu/ml": 1000.0,
            "[iu]/ml": 1000.0,
        },
    ),
    "gestational-age": (
        "wk",
        {"wk": 1.0, "week": 1.0, "weeks": 1.0, "d": 1 / 7, "day": 1 / 7, "days": 1 / 7},
    ),
}


def canonical_unit(analyte: str) -> str:
    """The unit every value of `analyte` is reported in after conversion."""
    return CANONICAL[analyte][0]


def to_canonical(analyte: str, value: float, unit: str | None) -> float | None:
    """Convert `value` in `unit` to the analyte's canonical unit; None when unknown."""
    if analyte not in CANONICAL or unit is None:
        return None
    factor = CANONICAL[analyte][1].get(_spelling(unit))
    return None if factor is None else value * factor


def _spelling(unit: str) -> str:
    # UCUM is case-sensitive, but labs send "mg/dl" and "umol/L" alike; none of the units
    # above differ only by case, so folding case is safe here.
    return unit.strip().replace("μ", "µ").lower()
