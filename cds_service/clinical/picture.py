"""The normalised patient picture the rules read: gate, labs in canonical units, conditions, meds.

``build_picture`` is the only place that turns raw FHIR into domain facts. Everything here is
pure: the evaluation time and the value sets are passed in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.dates import age_in_years, parse_date, parse_datetime
from cds_service.clinical.egfr import Sex, ckd_epi_2021
from cds_service.clinical.reader import ReadReport, Resources, read_resources
from cds_service.clinical.terminology import UCUM, ValueSet
from cds_service.clinical.units import CANONICAL, canonical_unit, to_canonical

RLS = "rls"
USABLE_LAB_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
ACTIVE_REQUEST = frozenset({"active", "on-hold"})
ACTIVE_STATEMENT = frozenset({"active", "intended"})
#: How far in the future a lab may be dated and still count (clock skew between systems).
FUTURE_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True)
class LabResult:
    """One lab value in its analyte's canonical unit, with where it came from."""

    analyte: str
    value: float
    unit: str
    effective: datetime
    name: str
    source: str
    comparator: str | None = None
    derived_from: tuple[LabResult, ...] = ()

    @property
    def reported(self) -> bool:
        """False for values we computed (eGFR from creatinine, TSAT from iron and TIBC)."""
        return not self.derived_from


@dataclass(frozen=True)
class ConditionFact:
    """A Condition that is not refuted or entered in error, tagged with its value sets."""

    name: str
    value_sets: frozenset[str]
    active: bool
    recorded: datetime | None
    source: str


@dataclass(frozen=True)
class MedicationFact:
    """An active medication (request or statement), tagged with its value sets."""

    name: str
    value_sets: frozenset[str]
    status: str
    source: str


@dataclass(frozen=True)
class PatientPicture:
    """Everything the rules know about one patient at one evaluation time."""

    patient_id: str
    now: datetime
    sex: Sex | None
    birth_date: date | None
    conditions: tuple[ConditionFact, ...]
    medications: tuple[MedicationFact, ...]
    labs: Mapping[str, tuple[LabResult, ...]] = field(repr=False)
    report: ReadReport = field(repr=False, compare=False)
    unavailable: frozenset[str] = frozenset()
    """Kinds of data (patient, conditions, labs, medications) that could not be read."""

    @property
    def has_rls(self) -> bool:
        """The gate of topics.md: an active, not refuted RLS condition."""
        return any(c.active and RLS in c.value_sets for c in self.conditions)

    def active_conditions(self, value_set: str) -> list[ConditionFact]:
        return [c for c in self.conditions if c.active and value_set in c.value_sets]

    def latest(self, analyte: str, within: timedelta) -> LabResult | None:
        """The newest value dated within `within` before now.

        A reported value beats one we computed from the same day's labs (a lab's own eGFR
        over ours from a creatinine drawn minutes later).
        """
        earliest = self.now - within
        candidates = [r for r in self.on_record(analyte) if r.effective >= earliest]
        return max(
            candidates, key=lambda r: (r.effective.date(), r.reported, r.effective), default=None
        )

    def on_record(self, analyte: str) -> list[LabResult]:
        """Every value not dated in the future (beyond clock skew), newest first."""
        latest = self.now + FUTURE_TOLERANCE
        return [r for r in self.labs.get(analyte, ()) if r.effective <= latest]


def build_picture(
    prefetch: Mapping[str, Any],
    patient_id: str,
    now: datetime,
    value_sets: Mapping[str, ValueSet],
    unavailable: frozenset[str] = frozenset(),
) -> PatientPicture:
    """Read the prefetch into a PatientPicture; unreadable resources are skipped and counted.

    `unavailable` names the kinds of data that could not be fetched, so that rules needing
    them stay silent instead of concluding from an absence.
    """
    report = ReadReport()
    res = read_resources(prefetch, patient_id, report)
    sex = res.patient.gender if res.patient and res.patient.gender in ("female", "male") else None
    birth = parse_date(res.patient.birthDate) if res.patient else None
    labs = _read_labs(res.observations, value_sets, report)
    _add_computed_tsat(labs)
    _add_computed_egfr(labs, birth, sex)  # type: ignore[arg-type]
    return PatientPicture(
        patient_id=patient_id,
        now=now,
        sex=sex,  # type: ignore[arg-type]
        birth_date=birth,
        conditions=tuple(_read_conditions(res.conditions, value_sets, report)),
        medications=tuple(_read_medications(res, value_sets, report)),
        labs={
            k: tuple(sorted(v, key=lambda r: r.effective, reverse=True)) for k, v in labs.items()
        },
        report=report,
        unavailable=unavailable,
    )


def _members(
    value_sets: Mapping[str, ValueSet], concepts: Iterable[fr.CodeableConcept]
) -> set[str]:
    concepts = list(concepts)
    pairs = [pair for concept in concepts for pair in concept.pairs()]
    texts = [text for concept in concepts for text in concept.texts()]
    return {
        vs_id
        for vs_id, vs in value_sets.items()
        if any(vs.has_code(s, c) for s, c in pairs) or any(vs.names_in(t) for t in texts)
    }


def _status(concept: fr.CodeableConcept | None) -> str | None:
    if concept is None:
        return None
    return next((c.code for c in concept.coding if c.code), None)


def _read_conditions(
    conditions: Iterable[fr.Condition], value_sets: Mapping[str, ValueSet], report: ReadReport
) -> Iterator[ConditionFact]:
    for condition in conditions:
        if _status(condition.verificationStatus) in EXCLUDED_VERIFICATION:
            report.ignore("Condition", "refuted-or-entered-in-error")
            continue
        if condition.code is None:
            report.ignore("Condition", "no-code")
            continue
        clinical = _status(condition.clinicalStatus)
        yield ConditionFact(
            name=condition.code.label() or "unnamed condition",
            value_sets=frozenset(_members(value_sets, [condition.code])),
            active=clinical is None or clinical in ACTIVE_CLINICAL,
            recorded=parse_datetime(condition.recordedDate or condition.onsetDateTime),
            source=f"Condition/{condition.id}",
        )


def _read_labs(
    observations: Iterable[fr.Observation], value_sets: Mapping[str, ValueSet], report: ReadReport
) -> dict[str, list[LabResult]]:
    labs: dict[str, list[LabResult]] = defaultdict(list)
    for obs in observations:
        analyte = next(
            (a for a in CANONICAL if a in value_sets and _codes_in(value_sets[a], obs.code)), None
        )
        if analyte is None:
            report.ignore("Observation", "not-a-lab-we-use")
            continue
        if obs.status not in USABLE_LAB_STATUSES:
            report.ignore("Observation", f"status-{obs.status}")
            continue
        when = parse_datetime(
            obs.effectiveDateTime
            or obs.effectiveInstant
            or (obs.effectivePeriod.start if obs.effectivePeriod else None)
            or obs.issued
        )
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
    return labs


def _canonical_value(analyte: str, quantity: fr.Quantity) -> float | None:
    """The value in canonical units, read from the UCUM code if it is one, else the unit text."""
    assert quantity.value is not None
    ucum = quantity.code if quantity.system in (None, UCUM) else None
    for unit in (ucum, quantity.unit):
        value = to_canonical(analyte, quantity.value, unit)
        if value is not None:
            return value
    return None


def _codes_in(value_set: ValueSet, concept: fr.CodeableConcept) -> bool:
    return any(value_set.has_code(system, code) for system, code in concept.pairs())


def _add_computed_tsat(labs: dict[str, list[LabResult]]) -> None:
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


def _add_computed_egfr(
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


def _read_medications(
    res: Resources, value_sets: Mapping[str, ValueSet], report: ReadReport
) -> Iterator[MedicationFact]:
    for use in (*res.medication_requests, *res.medication_statements):
        if not _is_active(use):
            report.ignore(use.resourceType, f"status-{use.status}")
            continue
        concept = _medication_concept(use, res.medications)
        if concept is None:
            report.ignore(use.resourceType, "medication-unresolved")
            continue
        yield MedicationFact(
            name=concept.label() or "unnamed medication",
            value_sets=frozenset(_members(value_sets, [concept])),
            status=use.status,
            source=f"{use.resourceType}/{use.id}",
        )


def _is_active(use: fr.MedicationUse) -> bool:
    """topics.md: requests active or on-hold; statements active, intended, or unknown
    without an end date."""
    if isinstance(use, fr.MedicationRequest):
        return use.status in ACTIVE_REQUEST
    assert isinstance(use, fr.MedicationStatement)
    if use.status in ACTIVE_STATEMENT:
        return True
    ended = use.effectivePeriod is not None and use.effectivePeriod.end is not None
    return use.status == "unknown" and not ended


def _medication_concept(
    use: fr.MedicationUse, medications: Mapping[str, fr.Medication]
) -> fr.CodeableConcept | None:
    if use.medicationCodeableConcept is not None:
        return use.medicationCodeableConcept
    ref = use.medicationReference.reference if use.medicationReference else None
    if not ref:
        return None
    if ref.startswith("#"):
        medication = use.contained_medication(ref)
    else:  # "Medication/1", an absolute URL ending so, or a bundle fullUrl
        medication = medications.get(ref) or medications.get("/".join(ref.split("/")[-2:]))
    return medication.code if medication else None
