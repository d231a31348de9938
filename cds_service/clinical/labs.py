"""Lab results in canonical units (and computed TSAT and eGFR), and pregnancy test answers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.coding import members_of, value_set_index
from cds_service.clinical.dates import age_in_years, parse_datetime
from cds_service.clinical.egfr import Sex, ckd_epi_2021
from cds_service.clinical.facts import (
    OBSERVED_ORDER_VALUE_SETS,
    PREGNANCY_NEGATIVE,
    PREGNANCY_POSITIVE,
    PREGNANCY_TEST,
    LabResult,
    PregnancyResult,
)
from cds_service.clinical.reader import ReadReport
from cds_service.clinical.terminology import UCUM, ValueSet
from cds_service.clinical.units import CANONICAL, canonical_unit, to_canonical

#: Observation codes read here: the quantity labs, the pregnancy tests and the tests whose
#: result shows an order was done.
_LAB_SETS = frozenset({*CANONICAL, PREGNANCY_TEST, *OBSERVED_ORDER_VALUE_SETS})
USABLE_LAB_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})


def read_labs(
    observations: Iterable[fr.Observation], value_sets: Mapping[str, ValueSet], report: ReadReport
) -> tuple[dict[str, list[LabResult]], list[fr.Observation], list[fr.Observation]]:
    """Labs in canonical units by analyte, the pregnancy tests (read separately), and the
    results that show a test we might suggest was done (coeliac serology)."""
    labs: dict[str, list[LabResult]] = defaultdict(list)
    tests: list[fr.Observation] = []
    done: list[fr.Observation] = []
    index = value_set_index(value_sets)
    # A record repeats its codes (one per test, drawn again and again) and its dates (a
    # panel's results share one): each is looked up or parsed once per call.
    analytes: dict[tuple[tuple[str | None, str | None], ...], _Coded] = {}
    moments: dict[str | None, datetime | None] = {}
    for obs in observations:
        if report.over_budget("Observation"):
            continue
        pairs = tuple([(c.system, c.code) for c in obs.code.coding])
        known = analytes.get(pairs)
        if known is None:
            coded = index.members(pairs, (), _LAB_SETS)
            known = analytes[pairs] = (next((a for a in CANONICAL if a in coded), None), coded)
        analyte, coded = known
        if analyte is None:
            if PREGNANCY_TEST in coded:
                tests.append(obs)
            elif coded & set(OBSERVED_ORDER_VALUE_SETS) and obs.status in USABLE_LAB_STATUSES:
                done.append(obs)
            else:
                report.ignore("Observation", "not-a-lab-we-use")
            continue
        if obs.status not in USABLE_LAB_STATUSES:
            report.ignore("Observation", f"status-{obs.status}")
            continue
        text = _observed_text(obs)
        when = moments[text] if text in moments else moments.setdefault(text, parse_datetime(text))
        quantity = obs.valueQuantity
        if when is None or quantity is None or quantity.value is None:
            report.ignore("Observation", "no-date-or-value")
            continue
        value = _canonical_value(analyte, quantity)
        if value is None:
            report.ignore("Observation", "unconvertible-unit")
            continue
        labs[analyte].append(
            LabResult(
                analyte=analyte,
                value=value,
                unit=canonical_unit(analyte),
                effective=when,
                name=value_sets[analyte].title,
                source=f"Observation/{obs.id}",
                comparator=quantity.comparator,
            )
        )
    return labs, tests, done


def observed_at(obs: fr.Observation) -> datetime | None:
    """When the observation was made (effective time, else when it was issued)."""
    return parse_datetime(_observed_text(obs))


def _observed_text(obs: fr.Observation) -> str | None:
    return (
        obs.effectiveDateTime
        or obs.effectiveInstant
        or (obs.effectivePeriod.start if obs.effectivePeriod else None)
        or obs.issued
    )


#: An Observation code's analyte (None: not a quantity lab), and all the sets it is in.
_Coded = tuple[str | None, frozenset[str]]


def read_pregnancy_results(
    observations: Iterable[fr.Observation], value_sets: Mapping[str, ValueSet], report: ReadReport
) -> Iterator[PregnancyResult]:
    """Pregnancy tests and pregnancy status (by code), read from a coded or text answer.

    A negative answer is looked for first: "not pregnant" also contains "pregnant".
    """
    for obs in observations:
        if report.over_budget("Observation"):
            continue
        if obs.status not in USABLE_LAB_STATUSES:
            report.ignore("Observation", f"status-{obs.status}")
            continue
        when = observed_at(obs)
        answer = obs.valueCodeableConcept
        concepts = [answer] if answer else []
        if obs.valueString:
            concepts.append(fr.CodeableConcept(text=obs.valueString))
        members = members_of(value_sets, concepts, (PREGNANCY_NEGATIVE, PREGNANCY_POSITIVE))
        if when is None or not members:
            report.ignore("Observation", "pregnancy-result-unreadable")
            continue
        yield PregnancyResult(
            positive=PREGNANCY_NEGATIVE not in members,
            when=when,
            name=obs.code.label() or value_sets[PREGNANCY_TEST].title,
            source=f"Observation/{obs.id}",
        )


def _canonical_value(analyte: str, quantity: fr.Quantity) -> float | None:
    """The value in canonical units, read from the UCUM code if it is one, else the unit text."""
    assert quantity.value is not None
    ucum = quantity.code if quantity.system in (None, UCUM) else None
    for unit in (ucum, quantity.unit):
        value = to_canonical(analyte, quantity.value, unit)
        if value is not None:
            return value
    return None


def add_computed_tsat(labs: dict[str, list[LabResult]]) -> None:
    """TSAT % = iron / TIBC x 100, from an iron and a TIBC drawn the same day, when no TSAT is."""
    reported_days = {r.effective.date() for r in labs.get("transferrin-saturation", [])}
    tibc_by_day = {r.effective.date(): r for r in labs.get("tibc", []) if r.value > 0}
    for iron in labs.get("serum-iron", []):
        day = iron.effective.date()
        tibc = tibc_by_day.get(day)
        if tibc is None or day in reported_days or iron.comparator or tibc.comparator:
            continue
        reported_days.add(day)
        labs["transferrin-saturation"].append(
            LabResult(
                analyte="transferrin-saturation",
                value=iron.value / tibc.value * 100,
                unit="%",
                effective=max(iron.effective, tibc.effective),
                name="Transferrin saturation (computed from iron and TIBC)",
                source="computed",
                derived_from=(iron, tibc),
            )
        )


def add_computed_egfr(
    labs: dict[str, list[LabResult]], birth: date | None, sex: Sex | None
) -> None:
    """eGFR by CKD-EPI 2021 for each creatinine, when age (adult) and sex are known."""
    if birth is None or sex is None:
        return
    for creatinine in labs.get("creatinine", []):
        age = age_in_years(birth, creatinine.effective.date())
        if age < 18 or creatinine.value <= 0 or creatinine.comparator:
            continue
        labs["egfr"].append(
            LabResult(
                analyte="egfr",
                value=ckd_epi_2021(creatinine.value, age, sex),
                unit=canonical_unit("egfr"),
                effective=creatinine.effective,
                name="eGFR (CKD-EPI 2021, computed from creatinine)",
                source="computed",
                derived_from=(creatinine,),
            )
        )
