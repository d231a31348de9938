"""The tolerant reader: prefetch values in, typed resources about one patient out.

Prefetch values may be searchset or collection Bundles, single resources, OperationOutcomes
or null, under any key. Each resource is read on its own: one that does not fit its model is
skipped and counted, never fatal, and nothing about its content is kept or logged.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.budget import Budget

R = TypeVar("R", bound=fr.PatientData)


@dataclass
class ReadReport:
    """What the reader did with the resources it was given (counts only, no content), and
    the CPU budget every reader asks before each resource."""

    read: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    budget: Budget | None = None
    unread: set[str] = field(default_factory=set)
    """Resource types of which some were not read because the budget was spent."""

    def over_budget(self, resource_type: str) -> bool:
        """True (and counted) when the budget is spent: the resource is not read."""
        if self.budget is None or not self.budget.exhausted():
            return False
        self.skip(resource_type, "budget-exhausted")
        self.unread.add(resource_type)
        return True

    def skip(self, resource_type: str, reason: str) -> None:
        """Count a resource that could not be read at all."""
        self.skipped[f"{resource_type}:{reason}"] += 1

    def ignore(self, resource_type: str, reason: str) -> None:
        """Count a readable resource that the rules may not use (status, unit, patient)."""
        self.ignored[f"{resource_type}:{reason}"] += 1

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass(frozen=True)
class Resources:
    """The readable resources about one patient, by type, plus Medications for references."""

    patient: fr.Patient | None
    conditions: tuple[fr.Condition, ...]
    observations: tuple[fr.Observation, ...]
    medication_requests: tuple[fr.MedicationRequest, ...]
    medication_statements: tuple[fr.MedicationStatement, ...]
    medication_administrations: tuple[fr.MedicationAdministration, ...]
    service_requests: tuple[fr.ServiceRequest, ...]
    procedures: tuple[fr.Procedure, ...]
    medications: Mapping[str, fr.Medication]
    """Medications outside the requests, by ``Medication/<id>`` and by fullUrl."""


def iter_resources(prefetch: Mapping[str, Any], report: ReadReport) -> Iterator[tuple[str, dict]]:
    """Yield (fullUrl or "", resource dict) for every resource in every prefetch value."""
    for value in prefetch.values():
        if value is None:
            continue
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            report.skip("prefetch", "not-a-resource")
            continue
        if value["resourceType"] == "OperationOutcome":
            continue
        if value["resourceType"] != "Bundle":
            yield "", value
            continue
        entries = value.get("entry") or []
        if not isinstance(entries, list):
            report.skip("Bundle", "entry-not-a-list")
            continue
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                report.skip("Bundle", "entry-without-resource")
                continue
            full_url = entry.get("fullUrl")
            yield (full_url if isinstance(full_url, str) else ""), resource


def read_resources(prefetch: Mapping[str, Any], patient_id: str, report: ReadReport) -> Resources:
    """Read every resource about `patient_id`; skip and count the rest."""
    by_type: dict[type[fr.Resource], list[tuple[str, Any]]] = defaultdict(list)
    for url, resource in _parse_each(prefetch, report):
        by_type[type(resource)].append((url, resource))
    patients = [r for _, r in by_type[fr.Patient] if r.id == patient_id]
    aliases = {f"Patient/{patient_id}"}
    aliases.update(url for url, r in by_type[fr.Patient] if r.id == patient_id and url)
    medications = {
        key: r
        for url, r in by_type[fr.Medication]
        for key in (f"Medication/{r.id}" if r.id else "", url)
        if key
    }
    suffix = f"/Patient/{patient_id}"

    def of(kind: type[R]) -> tuple[R, ...]:
        about: list[R] = []
        for _, resource in by_type[kind]:
            ref = resource.subject.reference if resource.subject else None
            if ref and (ref in aliases or ref.endswith(suffix)):
                about.append(resource)
            else:
                report.ignore(resource.resourceType, "other-patient" if ref else "no-subject")
        return tuple(about)

    return Resources(
        patient=patients[0] if patients else None,
        conditions=of(fr.Condition),
        observations=of(fr.Observation),
        medication_requests=of(fr.MedicationRequest),
        medication_statements=of(fr.MedicationStatement),
        medication_administrations=of(fr.MedicationAdministration),
        service_requests=of(fr.ServiceRequest),
        procedures=of(fr.Procedure),
        medications=medications,
    )


#: Each light model's validator, called directly (model_validate adds a Python call per resource).
_VALIDATORS = {kind: model.__pydantic_validator__ for kind, model in fr.MODELS.items()}


def _parse_each(
    prefetch: Mapping[str, Any], report: ReadReport
) -> Iterator[tuple[str, fr.Resource]]:
    """Each resource through its light model, once per (type, id); malformed ones counted."""
    seen: set[tuple[str, str]] = set()
    read: Counter[str] = Counter()
    for full_url, raw in iter_resources(prefetch, report):
        kind = raw["resourceType"]
        validator = _VALIDATORS.get(kind)
        if validator is None:
            report.ignore(kind, "not-used")
            continue
        raw_id = raw.get("id")
        identity = (kind, raw_id) if isinstance(raw_id, str) else None
        if identity in seen:
            continue
        if report.over_budget(kind):
            continue
        try:
            resource = validator.validate_python(raw)
        except (ValidationError, RecursionError):
            report.skip(kind, "malformed")
            continue
        if isinstance(resource, fr.MedicationUse):
            resource._raw = raw
        if identity:
            seen.add(identity)
        read[kind] += 1
        yield full_url, resource
    report.read.update(read)


def unresolved_medication_ids(prefetch: Mapping[str, Any]) -> list[str]:
    """Ids of Medications that requests or statements reference but the prefetch lacks.

    Contained (``#id``) references resolve locally and are not listed.
    """
    present: set[str] = set()
    wanted: list[str] = []
    for _, raw in iter_resources(prefetch, ReadReport()):
        kind = raw["resourceType"]
        if kind == "Medication" and isinstance(raw.get("id"), str):
            present.add(raw["id"])
        elif kind in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
            reference = raw.get("medicationReference")
            ref = reference.get("reference") if isinstance(reference, dict) else None
            if isinstance(ref, str) and not ref.startswith("#"):
                kind_part, _, med_id = "/".join(ref.rstrip("/").split("/")[-2:]).partition("/")
                if kind_part == "Medication" and med_id and med_id not in wanted:
                    wanted.append(med_id)
    return [med_id for med_id in wanted if med_id not in present]
