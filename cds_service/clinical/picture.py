"""The normalised patient picture the rules read: gate, labs in canonical units, conditions, meds.

``build_picture`` is the only place that turns raw FHIR into domain facts. Everything here is
pure: the evaluation time and the value sets are passed in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.dates import age_in_years, parse_date, parse_datetime
from cds_service.clinical.egfr import Sex, ckd_epi_2021
from cds_service.clinical.reader import ReadReport, Resources, read_resources
from cds_service.clinical.terminology import UCUM, ValueSet, ValueSetIndex
from cds_service.clinical.units import CANONICAL, canonical_unit, to_canonical

RLS = "rls"
#: Value sets each kind of resource is matched against (knowledge.py checks they exist).
CONDITION_VALUE_SETS = (
    "rls", "esrd-dialysis", "dialysis", "ckd-stage-3-5", "pregnancy", "neuropathy",
    "radiculopathy-spine", "venous-insufficiency", "peripheral-arterial-disease",
    "dvt-history", "dvt-acute",
)  # fmt: skip
MEDICATION_VALUE_SETS = (
    "sedating-antihistamine", "dopamine-antagonist-antiemetic", "antipsychotic",
    "serotonergic-antidepressant", "dopamine-agonist", "gabapentin", "pregabalin",
    "gabapentin-enacarbil",
)  # fmt: skip
ORDER_VALUE_SETS = (
    "order-iron-studies", "order-kidney-function", "order-venous-duplex",
    "order-nerve-conduction", "order-ankle-brachial-index",
)  # fmt: skip
PREGNANCY_TEST = "pregnancy-test"
PREGNANCY_POSITIVE = "pregnancy-positive"
PREGNANCY_NEGATIVE = "pregnancy-negative"
_LAB_SETS = frozenset({*CANONICAL, PREGNANCY_TEST})
REQUIRED_VALUE_SETS = (
    *CONDITION_VALUE_SETS, *MEDICATION_VALUE_SETS, *ORDER_VALUE_SETS,
    PREGNANCY_TEST, PREGNANCY_POSITIVE, PREGNANCY_NEGATIVE, *CANONICAL,
)  # fmt: skip
USABLE_LAB_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
ACTIVE_REQUEST = frozenset({"active", "on-hold"})
ACTIVE_STATEMENT = frozenset({"active", "intended"})
PENDING_ORDER = frozenset({"active", "on-hold"})
#: topics.md: in order hooks' draftOrders, draft (and active or on-hold) requests count.
DRAFT_REQUEST = frozenset({"draft", "active", "on-hold"})
PENDING_PROCEDURE = frozenset({"preparation", "in-progress"})
#: How far in the future a lab may be dated and still count (clock skew between systems).
FUTURE_TOLERANCE = timedelta(days=1)
_UNDATED = datetime.min.replace(tzinfo=UTC)


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
    clinical_status: str | None = None
    onset: datetime | None = None

    @property
    def since(self) -> datetime | None:
        """When the condition began, or failing that when it was recorded."""
        return self.onset or self.recorded


@dataclass(frozen=True)
class MedicationFact:
    """An active medication (request or statement), tagged with its value sets."""

    name: str
    value_sets: frozenset[str]
    status: str
    source: str
    when: datetime | None = None
    dosages: tuple[fr.Dosage, ...] = ()
    raw: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    """The MedicationRequest as received, for an update suggestion; None for statements."""

    @property
    def is_request(self) -> bool:
        return self.source.startswith("MedicationRequest/")


@dataclass(frozen=True)
class OrderFact:
    """A test or procedure on the record: ordered and pending, or done."""

    name: str
    value_sets: frozenset[str]
    state: Literal["pending", "done"]
    when: datetime | None
    source: str


@dataclass(frozen=True)
class PregnancyResult:
    """A pregnancy test or pregnancy-status observation read as positive or negative."""

    positive: bool
    when: datetime
    name: str
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
    orders: tuple[OrderFact, ...] = ()
    pregnancy_results: tuple[PregnancyResult, ...] = ()
    deceased: bool = False
    unavailable: frozenset[str] = frozenset()
    """Kinds of data (patient, conditions, labs, medications, ...) that could not be read."""

    @property
    def has_rls(self) -> bool:
        """The gate of topics.md: an active, not refuted RLS condition (in a living patient)."""
        return not self.deceased and any(c.active and RLS in c.value_sets for c in self.conditions)

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
) -> PatientPicture:
    """Read the prefetch into a PatientPicture; unreadable resources are skipped and counted.

    `unavailable` names the kinds of data that could not be fetched, so that rules needing
    them stay silent instead of concluding from an absence.
    """
    report = ReadReport()
    res = read_resources(prefetch, patient_id, report)
    sex = res.patient.gender if res.patient and res.patient.gender in ("female", "male") else None
    birth = parse_date(res.patient.birthDate) if res.patient else None
    labs, tests = _read_labs(res.observations, value_sets, report)
    pregnancy = tuple(_read_pregnancy_results(tests, value_sets, report))
    _add_computed_tsat(labs)
    _add_computed_egfr(labs, birth, sex)  # type: ignore[arg-type]
    return PatientPicture(
        patient_id=patient_id,
        now=now,
        sex=sex,  # type: ignore[arg-type]
        birth_date=birth,
        conditions=tuple(_read_conditions(res.conditions, value_sets, report)),
        medications=tuple(_read_medications(res, value_sets, report)),
        orders=tuple(_read_orders(res, value_sets, report)),
        pregnancy_results=pregnancy,
        deceased=_deceased(res.patient, now),
        labs={
            k: tuple(sorted(v, key=lambda r: r.effective, reverse=True)) for k, v in labs.items()
        },
        report=report,
        unavailable=unavailable,
    )


_INDEXES: list[ValueSetIndex] = []


def _deceased(patient: fr.Patient | None, now: datetime) -> bool:
    """Cards suggest orders and drug changes: none for a patient recorded as deceased."""
    if patient is None:
        return False
    died = parse_datetime(patient.deceasedDateTime)
    return patient.deceasedBoolean is True or (died is not None and died <= now)


def _index(value_sets: Mapping[str, ValueSet]) -> ValueSetIndex:
    """The index of a knowledge base's value sets, built once per mapping (not per hook)."""
    for index in _INDEXES:
        if index.value_sets is value_sets:
            return index
    index = ValueSetIndex(value_sets)
    _INDEXES[:] = [*_INDEXES[-7:], index]  # a few live knowledge bases at most (tests)
    return index


def _members(
    value_sets: Mapping[str, ValueSet],
    concepts: Iterable[fr.CodeableConcept],
    among: Collection[str],
) -> frozenset[str]:
    """The value sets (of `among`) that any code or name of the concepts belongs to."""
    concepts = list(concepts)
    pairs = [pair for concept in concepts for pair in concept.pairs()]
    texts = [text for concept in concepts for text in concept.texts()]
    return frozenset(_index(value_sets).members(pairs, texts, among))


def _name(
    concept: fr.CodeableConcept,
    members: frozenset[str],
    value_sets: Mapping[str, ValueSet],
    unnamed: str,
) -> str:
    """The concept's own text or display; else the display our value set gives its code;
    else the code itself, so a card never shows a coded problem as nameless."""
    label = concept.label()
    if label:
        return label
    for system, code in concept.pairs():
        for vs_id in members:
            display = value_sets[vs_id].display_for(system, code)
            if display:
                return display
    return next((code for _, code in concept.pairs() if code), unnamed)


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
        members = _members(value_sets, [condition.code], CONDITION_VALUE_SETS)
        yield ConditionFact(
            name=_name(condition.code, members, value_sets, "unnamed condition"),
            value_sets=members,
            active=clinical is None or clinical in ACTIVE_CLINICAL,
            recorded=parse_datetime(condition.recordedDate),
            source=f"Condition/{condition.id}",
            clinical_status=clinical,
            onset=parse_datetime(condition.onsetDateTime),
        )


def _read_labs(
    observations: Iterable[fr.Observation], value_sets: Mapping[str, ValueSet], report: ReadReport
) -> tuple[dict[str, list[LabResult]], list[fr.Observation]]:
    """Labs in canonical units by analyte, and the pregnancy tests (read separately)."""
    labs: dict[str, list[LabResult]] = defaultdict(list)
    tests: list[fr.Observation] = []
    for obs in observations:
        coded = _index(value_sets).members(obs.code.pairs(), (), _LAB_SETS)
        analyte = next((a for a in CANONICAL if a in coded), None)
        if analyte is None:
            if PREGNANCY_TEST in coded:
                tests.append(obs)
            else:
                report.ignore("Observation", "not-a-lab-we-use")
            continue
        if obs.status not in USABLE_LAB_STATUSES:
            report.ignore("Observation", f"status-{obs.status}")
            continue
        when = _observed_at(obs)
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
    return labs, tests


def _observed_at(obs: fr.Observation) -> datetime | None:
    return parse_datetime(
        obs.effectiveDateTime
        or obs.effectiveInstant
        or (obs.effectivePeriod.start if obs.effectivePeriod else None)
        or obs.issued
    )


def _read_pregnancy_results(
    observations: Iterable[fr.Observation], value_sets: Mapping[str, ValueSet], report: ReadReport
) -> Iterator[PregnancyResult]:
    """Pregnancy tests and pregnancy status (by code), read from a coded or text answer.

    A negative answer is looked for first: "not pregnant" also contains "pregnant".
    """
    for obs in observations:
        if obs.status not in USABLE_LAB_STATUSES:
            report.ignore("Observation", f"status-{obs.status}")
            continue
        when = _observed_at(obs)
        answer = obs.valueCodeableConcept
        concepts = [answer] if answer else []
        if obs.valueString:
            concepts.append(fr.CodeableConcept(text=obs.valueString))
        members = _members(value_sets, concepts, (PREGNANCY_NEGATIVE, PREGNANCY_POSITIVE))
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


def read_drafts(
    draft_orders: Any,
    references: Mapping[str, Any],
    patient_id: str,
    value_sets: Mapping[str, ValueSet],
    report: ReadReport,
) -> tuple[MedicationFact, ...]:
    """The draft medication orders of an order hook, tagged with their value sets.

    A draft's medication may be contained, another entry of `draft_orders`, or a
    Medication in `references` (prefetch values or Medications read by id). Requests that
    are cancelled, stopped or entered in error are counted and left out.
    """
    drafts = read_resources({"draftOrders": draft_orders}, patient_id, report)
    referenced = read_resources(references, patient_id, ReadReport()).medications
    drafts = replace(
        drafts, medications={**referenced, **drafts.medications}, medication_statements=()
    )
    return tuple(_read_medications(drafts, value_sets, report, DRAFT_REQUEST))


def _read_medications(
    res: Resources,
    value_sets: Mapping[str, ValueSet],
    report: ReadReport,
    request_statuses: frozenset[str] = frozenset(),
) -> Iterator[MedicationFact]:
    """Active medications; with `request_statuses`, requests in those statuses instead."""
    for use in (*res.medication_requests, *res.medication_statements):
        counts = use.status in request_statuses if request_statuses else _is_active(use)
        if not counts:
            report.ignore(use.resourceType, f"status-{use.status}")
            continue
        concept = _medication_concept(use, res.medications)
        if concept is None:
            report.ignore(use.resourceType, "medication-unresolved")
            continue
        if isinstance(use, fr.MedicationRequest):
            when, dosages, raw = use.authoredOn, use.dosageInstruction, use._raw
        else:
            assert isinstance(use, fr.MedicationStatement)
            period_start = use.effectivePeriod.start if use.effectivePeriod else None
            when = use.effectiveDateTime or period_start or use.dateAsserted
            dosages, raw = use.dosage, None
        members = _members(value_sets, [concept], MEDICATION_VALUE_SETS)
        yield MedicationFact(
            name=_name(concept, members, value_sets, "unnamed medication"),
            value_sets=members,
            status=use.status,
            source=f"{use.resourceType}/{use.id}",
            when=parse_datetime(when),
            dosages=tuple(dosages),
            raw=raw,
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


def _read_orders(
    res: Resources, value_sets: Mapping[str, ValueSet], report: ReadReport
) -> Iterator[OrderFact]:
    """Tests and procedures already ordered (pending) or done, for suggestions not to repeat."""
    for request in res.service_requests:
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
            value_sets=_members(value_sets, [request.code], ORDER_VALUE_SETS),
            state=state,
            when=parse_datetime(when),
            source=f"ServiceRequest/{request.id}",
        )
    for procedure in res.procedures:
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
            value_sets=_members(value_sets, [procedure.code], ORDER_VALUE_SETS),
            state=state,
            when=parse_datetime(procedure.performedDateTime or period),
            source=f"Procedure/{procedure.id}",
        )
