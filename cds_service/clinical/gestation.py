"""How far a pregnancy has gone, read from the codes that date it.

ICD-10-CM says it two ways: Z3A codes name the week of gestation (Z3A.01 under 8 weeks,
Z3A.08 to Z3A.42 the week, Z3A.49 over 42 weeks, Z3A.00 not stated), and the O-chapter
subcategories flagged in the pregnancy value set add a trimester character (1, 2, 3; 0 or 9
unspecified; 4 childbirth and 5 puerperium, which are not a current pregnancy).
Gestational-age observations are labs (``gestational-age``, in weeks) and are read by the
pregnancy rule with the card's thresholds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cds_service.clinical.terminology import ICD10CM, ValueSet, canonical_system, normalise_icd10

WEEKS_CATEGORY = "Z3A"
#: Z3A.01 "less than 8 weeks": at least 0 weeks; Z3A.49 "greater than 42 weeks": over 42.
UNDER_EIGHT_WEEKS = "01"
OVER_42_WEEKS = "49"
TRIMESTERS = {"1": 1, "2": 2, "3": 3}
UNSPECIFIED_TRIMESTER = frozenset({"0", "9"})


@dataclass(frozen=True)
class Gestation:
    """What one pregnancy code says of the pregnancy at the code's date: a trimester, or at
    least a number of weeks."""

    trimester: int | None = None
    weeks: float | None = None


@dataclass(frozen=True)
class PregnancyCode:
    """A pregnancy condition's codes read for gestation: `ended` when a code of a
    trimester subcategory names childbirth or the puerperium instead of a trimester."""

    ended: bool = False
    gestation: Gestation | None = None


def read_pregnancy_codes(
    pregnancy: ValueSet, pairs: Iterable[tuple[str | None, str | None]]
) -> PregnancyCode:
    """The gestation the codings of one pregnancy Condition state, if any.

    A delivery or puerperium character wins over any other coding of the same concept: the
    ICD-10-CM code is the precise one, and "pregnant now" must not rest on it.
    """
    found: Gestation | None = None
    for system, code in pairs:
        if canonical_system(system) != ICD10CM or not code or not code.strip():
            continue
        normal = normalise_icd10(code)
        character = pregnancy.trimester_character(ICD10CM, normal)
        if character is not None:
            if character in TRIMESTERS:
                found = found or Gestation(trimester=TRIMESTERS[character])
            elif character not in UNSPECIFIED_TRIMESTER:
                return PregnancyCode(ended=True)
            continue
        weeks = z3a_weeks(normal)
        if weeks is not None:
            found = Gestation(weeks=weeks)
    return PregnancyCode(gestation=found)


def z3a_weeks(code: str) -> float | None:
    """The least number of weeks a Z3A code states (None for Z3A.00 or any other code)."""
    category, _, rest = normalise_icd10(code).partition(".")
    if category != WEEKS_CATEGORY or len(rest) != 2 or not rest.isdigit():
        return None
    if rest == UNDER_EIGHT_WEEKS:
        return 0.0
    if rest == OVER_42_WEEKS:
        return 42.0
    weeks = int(rest)
    return float(weeks) if 8 <= weeks <= 42 else None
