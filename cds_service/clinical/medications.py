"""Medication requests, statements and administrations (and an order hook's drafts) as
MedicationFacts: the active ones, and the past ones (for "iron given in the last weeks")."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.coding import CallMemo, display_name, members_of
from cds_service.clinical.dates import parse_datetime
from cds_service.clinical.facts import INDICATION_VALUE_SETS, MEDICATION_VALUE_SETS, MedicationFact
from cds_service.clinical.reader import ReadReport, Resources, read_resources
from cds_service.clinical.terminology import ValueSet

ACTIVE_REQUEST = frozenset({"active", "on-hold"})
ACTIVE_STATEMENT = frozenset({"active", "intended"})
#: docs/card-topics.md: in order hooks' draftOrders, draft (and active or on-hold) requests count.
DRAFT_REQUEST = frozenset({"draft", "active", "on-hold"})
#: Past use: a request or statement completed or stopped, a dose given (or being given).
PAST_REQUEST = frozenset({"completed", "stopped"})
PAST_STATEMENT = frozenset({"completed", "stopped"})
GIVEN = frozenset({"completed", "in-progress", "on-hold", "stopped"})


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
        drafts,
        medications={**referenced, **drafts.medications},
        medication_statements=(),
        medication_administrations=(),
    )
    return tuple(read_medications(drafts, value_sets, report, DRAFT_REQUEST))


def read_medications(
    res: Resources,
    value_sets: Mapping[str, ValueSet],
    report: ReadReport,
    request_statuses: frozenset[str] = frozenset(),
    memo: CallMemo | None = None,
) -> Iterator[MedicationFact]:
    """Active medications; with `request_statuses`, requests in those statuses instead;
    `memo`: the call's terminology answers (coding.members_of)."""
    for use in (*res.medication_requests, *res.medication_statements):
        if report.over_budget(use.resourceType):
            continue
        counts = use.status in request_statuses if request_statuses else _is_active(use)
        if not counts:
            report.ignore(use.resourceType, f"status-{use.status}")
            continue
        concept = _medication_concept(use, res.medications)
        if concept is None:
            report.ignore(use.resourceType, "medication-unresolved")
            continue
        if isinstance(use, fr.MedicationRequest):
            when, dosages, request = use.authoredOn, use.dosageInstruction, use
        else:
            assert isinstance(use, fr.MedicationStatement)
            period_start = use.effectivePeriod.start if use.effectivePeriod else None
            when = use.effectiveDateTime or period_start or use.dateAsserted
            dosages, request = use.dosage, None
        members = members_of(value_sets, [concept], MEDICATION_VALUE_SETS, memo)
        yield MedicationFact(
            name=display_name(concept, members, value_sets, "unnamed medication"),
            value_sets=members,
            status=use.status,
            source=f"{use.resourceType}/{use.id}",
            when=parse_datetime(when),
            dosages=tuple(dosages),
            request=request,
            reasons=members_of(value_sets, use.reasonCode, INDICATION_VALUE_SETS, memo),
            reason_references=tuple(
                "/".join(r.reference.removeprefix("urn:uuid:").split("/")[-2:])
                for r in use.reasonReference
                if r.reference
            ),
        )


def read_medication_history(
    res: Resources, value_sets: Mapping[str, ValueSet], memo: CallMemo | None = None
) -> Iterator[MedicationFact]:
    """Medications used in the past that belong to one of our value sets: requests and
    statements completed or stopped (or unknown with an end date), and doses given.

    Not counted in the report: the active reading already counted these resources.
    """
    uses: list[fr.MedicationUse] = [
        *(r for r in res.medication_requests if r.status in PAST_REQUEST),
        *(s for s in res.medication_statements if _is_past_statement(s)),
        *(a for a in res.medication_administrations if a.status in GIVEN),
    ]
    for use in uses:
        concept = _medication_concept(use, res.medications)
        if concept is None:
            continue
        members = members_of(value_sets, [concept], MEDICATION_VALUE_SETS, memo)
        if not members:
            continue
        yield MedicationFact(
            name=display_name(concept, members, value_sets, "unnamed medication"),
            value_sets=members,
            status=use.status,
            source=f"{use.resourceType}/{use.id}",
            when=parse_datetime(_when(use)),
        )


def _when(use: fr.MedicationUse) -> str | None:
    """When the use happened: authored (request), taken or given (statement, administration)."""
    if isinstance(use, fr.MedicationRequest):
        return use.authoredOn
    assert isinstance(use, fr.MedicationStatement | fr.MedicationAdministration)
    period = use.effectivePeriod
    given = use.effectiveDateTime or (period.end or period.start if period else None)
    if isinstance(use, fr.MedicationStatement):
        return given or use.dateAsserted
    return given


def _is_past_statement(use: fr.MedicationStatement) -> bool:
    ended = use.effectivePeriod is not None and use.effectivePeriod.end is not None
    return use.status in PAST_STATEMENT or (use.status == "unknown" and ended)


def _is_active(use: fr.MedicationUse) -> bool:
    """docs/card-topics.md: requests active or on-hold; statements active, intended, or unknown
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
