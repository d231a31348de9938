"""The normalised patient picture the rules read: gate, labs in canonical units, conditions, meds.

``build_picture`` is the only place that turns raw FHIR into domain facts (with labs.py and
medications.py). Everything here is pure: the evaluation time and the value sets are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.budget import Budget
from cds_service.clinical.coding import CallMemo, display_name, members_of, status_code
from cds_service.clinical.dates import age_in_years, parse_date, parse_datetime
from cds_service.clinical.egfr import Sex
from cds_service.clinical.facts import (
    CONDITION_VALUE_SETS,
    ORDER_VALUE_SETS,
    PREGNANCY,
    RLS,
    ConditionFact,
    LabResult,
    MedicationFact,
    OrderFact,
    PregnancyResult,
)
from cds_service.clinical.gestation import read_pregnancy_codes
from cds_service.clinical.labs import (
    add_computed_egfr,
    add_computed_tsat,
    observed_at,
    read_labs,
    read_pregnancy_results,
)
from cds_service.clinical.medications import read_medication_history, read_medications
from cds_service.clinical.reader import ReadReport, Resources, read_resources
from cds_service.clinical.terminology import ValueSet

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
PENDING_ORDER = frozenset({"active", "on-hold"})
PENDING_PROCEDURE = frozenset({"preparation", "in-progress"})
#: How far in the future a lab may be dated and still count (clock skew between systems).
FUTURE_TOLERANCE = timedelta(days=1)
_UNDATED = datetime.min.replace(tzinfo=UTC)
#: The kinds of data (hooks.services.PREFETCH_KINDS) each resource type gives the rules.
KINDS_OF_TYPE: Mapping[str, tuple[str, ...]] = {
    "Patient": ("patient",),
    "Condition": ("conditions",),
    "Observation": ("labs", "weight"),
    "MedicationRequest": ("medications",),
    "MedicationStatement": ("medications",),
    "Medication": ("medications",),
    "ServiceRequest": ("orders",),
    "Procedure": ("orders",),
}


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
    orders: tuple[OrderFact, ...] = ()
    pregnancy_results: tuple[PregnancyResult, ...] = ()
    medication_history: tuple[MedicationFact, ...] = ()
    """Past medication use in our value sets (completed, stopped, given), for "iron given"."""
    deceased: bool = False
    unavailable: frozenset[str] = frozenset()
    """Kinds of data (patient, conditions, labs, medications, ...) that could not be read."""

    @property
    def has_rls(self) -> bool:
        """The gate of docs/card-topics.md: active, unrefuted RLS (in a living patient)."""
        return not self.deceased and any(c.active and RLS in c.value_sets for c in self.conditions)

    @property
    def age(self) -> int | None:
        """Completed years at the evaluation time, when the birth date is known."""
        return age_in_years(self.birth_date, self.now.date()) if self.birth_date else None

    def active_conditions(self, value_set: str) -> list[ConditionFact]:
        return [c for c in self.conditions if c.active and value_set in c.value_sets]

    def conditions_in(self, value_set: str) -> list[ConditionFact]:
        """Every recorded (not refuted) condition in the set, whatever its clinical status."""
        return [c for c in self.conditions if value_set in c.value_sets]

    def medications_in(self, value_set: str) -> list[MedicationFact]:
        return [m for m in self.medications if value_set in m.value_sets]

    def order_on_record(self, value_set: str, within: timedelta) -> OrderFact | None:
        """The newest order in the set that is pending or done within `within`, if any."""
        earliest = self.now - within
        found = [
            o
            for o in self.orders
            if value_set in o.value_sets and (o.when is None or o.when >= earliest)
        ]
        return max(found, key=lambda o: o.when or _UNDATED, default=None)

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
    budget: Budget | None = None,
) -> PatientPicture:
    """Read the prefetch into a PatientPicture; unreadable resources are skipped and counted.

    `unavailable` names the kinds of data that could not be fetched, so that rules needing
    them stay silent instead of concluding from an absence; the kinds of resources not read
    because the CPU `budget` was spent are added to it.
    """
    report = ReadReport(budget=budget)
    res = read_resources(prefetch, patient_id, report)
    sex = res.patient.gender if res.patient and res.patient.gender in ("female", "male") else None
    birth = parse_date(res.patient.birthDate) if res.patient else None
    labs, tests, done = read_labs(res.observations, value_sets, report)
    pregnancy = tuple(read_pregnancy_results(tests, value_sets, report))
    add_computed_tsat(labs)
    add_computed_egfr(labs, birth, sex)  # type: ignore[arg-type]
    memo: CallMemo = {}
    conditions = tuple(_read_conditions(res.conditions, value_sets, report, memo))
    medications = tuple(read_medications(res, value_sets, report, memo=memo))
    history = tuple(read_medication_history(res, value_sets, memo))
    orders = (*_read_orders(res, value_sets, report), *_observed_orders(done, value_sets))
    unread = {kind for kind_of in report.unread for kind in KINDS_OF_TYPE.get(kind_of, ())}
    return PatientPicture(
        patient_id=patient_id,
        now=now,
        sex=sex,  # type: ignore[arg-type]
        birth_date=birth,
        conditions=conditions,
        medications=medications,
        medication_history=history,
        orders=orders,
        pregnancy_results=pregnancy,
        deceased=_deceased(res.patient, now),
        labs={
            k: tuple(sorted(v, key=lambda r: r.effective, reverse=True)) for k, v in labs.items()
        },
        report=report,
        unavailable=unavailable | unread,
    )


def _deceased(patient: fr.Patient | None, now: datetime) -> bool:
    """Cards suggest orders and drug changes: none for a patient recorded as deceased."""
    if patient is None:
        return False
    died = parse_datetime(patient.deceasedDateTime)
    return patient.deceasedBoolean is True or (died is not None and died <= now)


def _read_conditions(
    conditions: Iterable[fr.Condition],
    value_sets: Mapping[str, ValueSet],
    report: ReadReport,
    memo: CallMemo | None = None,
) -> Iterator[ConditionFact]:
    for condition in conditions:
        if report.over_budget("Condition"):
            continue
        if status_code(condition.verificationStatus) in EXCLUDED_VERIFICATION:
            report.ignore("Condition", "refuted-or-entered-in-error")
            continue
        if condition.code is None:
            report.ignore("Condition", "no-code")
            continue
        clinical = status_code(condition.clinicalStatus)
        members = members_of(value_sets, [condition.code], CONDITION_VALUE_SETS, memo)
        gestation = None
        if PREGNANCY in members:
            reading = read_pregnancy_codes(value_sets[PREGNANCY], condition.code.pairs())
            if reading.ended:  # a childbirth or puerperium code: not pregnant now
                members = members - {PREGNANCY}
            gestation = reading.gestation
        yield ConditionFact(
            name=display_name(condition.code, members, value_sets, "unnamed condition"),
            value_sets=members,
            active=clinical is None or clinical in ACTIVE_CLINICAL,
            recorded=parse_datetime(condition.recordedDate),
            source=f"Condition/{condition.id}",
            clinical_status=clinical,
            onset=parse_datetime(condition.onsetDateTime),
            gestation=gestation,
        )


def _observed_orders(
    results: Iterable[fr.Observation], value_sets: Mapping[str, ValueSet]
) -> Iterator[OrderFact]:
    """A result on record (coeliac serology) shows its test was done, whatever the value."""
    for obs in results:
        yield OrderFact(
            name=obs.code.label() or "unnamed test",
            value_sets=members_of(value_sets, [obs.code], ORDER_VALUE_SETS),
            state="done",
            when=observed_at(obs),
            source=f"Observation/{obs.id}",
        )


def _read_orders(
    res: Resources, value_sets: Mapping[str, ValueSet], report: ReadReport
) -> Iterator[OrderFact]:
    """Tests and procedures already ordered (pending) or done, for suggestions not to repeat."""
    for request in res.service_requests:
        if report.over_budget("ServiceRequest"):
            continue
        if request.code is None:
            report.ignore("ServiceRequest", "no-code")
            continue
        if request.status in PENDING_ORDER:
            state: Literal["pending", "done"] = "pending"
            when = request.authoredOn
        elif request.status == "completed":
            state = "done"
            period = request.occurrencePeriod.start if request.occurrencePeriod else None
            when = request.occurrenceDateTime or period or request.authoredOn
        else:
            report.ignore("ServiceRequest", f"status-{request.status}")
            continue
        yield OrderFact(
            name=request.code.label() or "unnamed order",
            value_sets=members_of(value_sets, [request.code], ORDER_VALUE_SETS),
            state=state,
            when=parse_datetime(when),
            source=f"ServiceRequest/{request.id}",
        )
    for procedure in res.procedures:
        if report.over_budget("Procedure"):
            continue
        if procedure.code is None:
            report.ignore("Procedure", "no-code")
            continue
        if procedure.status == "completed":
            state = "done"
        elif procedure.status in PENDING_PROCEDURE:
            state = "pending"
        else:
            report.ignore("Procedure", f"status-{procedure.status}")
            continue
        period = procedure.performedPeriod.start if procedure.performedPeriod else None
        yield OrderFact(
            name=procedure.code.label() or "unnamed procedure",
            value_sets=members_of(value_sets, [procedure.code], ORDER_VALUE_SETS),
            state=state,
            when=parse_datetime(procedure.performedDateTime or period),
            source=f"Procedure/{procedure.id}",
        )
