"""eGFR by the race-free CKD-EPI 2021 creatinine equation.

Inker LA et al. New creatinine- and cystatin C-based equations to estimate GFR without race.
N Engl J Med 2021;385:1737-49 (PMID 34554658). Do not apply the 2009 race coefficient.
"""

from __future__ import annotations

from typing import Literal

Sex = Literal["female", "male"]

_KAPPA = {"female": 0.7, "male": 0.9}
_ALPHA = {"female": -0.241, "male": -0.302}


def ckd_epi_2021(creatinine_mg_dl: float, age_years: float, sex: Sex) -> float:
    """eGFR in mL/min/1.73 m2 from serum creatinine (mg/dL), age (years) and sex at birth."""
    if creatinine_mg_dl <= 0:
        raise ValueError("creatinine must be positive")
    if age_years < 18:
        raise ValueError("CKD-EPI 2021 is validated for adults only")
    ratio = creatinine_mg_dl / _KAPPA[sex]
    egfr = 142 * min(ratio, 1.0) ** _ALPHA[sex] * max(ratio, 1.0) ** -1.200 * 0.9938**age_years
    return egfr * 1.012 if sex == "female" else egfr
