"""The tolerant reader: prefetch values in, typed resources about one patient out.

Prefetch values may be searchset or collection Bundles, single resources, OperationOutcomes
or null, under any key. Each resource is read on its own: one that does not fit its model is
skipped and counted, never fatal, and nothing about its content is kept or logged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from cds_service.clinical import fhir_read as fr


@dataclass
class ReadReport:
    """What the reader did with the resources it was given (counts only, no content)."""

    read: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)

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
    patients: list[tuple[str, fr.Patient]] = []
    parsed: list[tuple[str, BaseModel]] = []
    seen: set[tuple[str, str]] = set()
    for full_url, raw in iter_resources(prefetch, report):
        kind = raw["resourceType"]
        model = fr.MODELS.get(kind)
        if model is None:
            report.ignore(kind, "not-used")
            continue
        identity = (kind, raw.get("id")) if isinstance(raw.get("id"), str) else None
        if identity in seen:
            continue
        try:
            resource = model.model_validate(raw)
        except (ValidationError, RecursionError):
            report.skip(kind, "malformed")
            continue
        if identity:
            seen.add(identity)
        report.read[kind] += 1
        if isinstance(resource, fr.Patient):
            patients.append((full_url, resource))
        else:
            parsed.append((full_url, resource))

    patient = next((p for _, p in patients if p.id == patient_id), None)
    aliases = {f"Patient/{patient_id}"} | {url for url, p in patients if p.id == patient_id and url}
    medications = {
        key: m
        for url, m in parsed
        if isinstance(m, fr.Medication)
        for key in (f"Medication/{m.id}" if m.id else None, url or None)
        if key
    }

    def about_patient(resource: BaseModel) -> bool:
        ref = resource.subject.reference if resource.subject else None  # type: ignore[attr-defined]
        if not ref:
            report.ignore(resource.resourceType, "no-subject")  # type: ignore[attr-defined]
            return False
        if ref in aliases or ref.endswith(f"/Patient/{patient_id}"):
            return True
        report.ignore(resource.resourceType, "other-patient")  # type: ignore[attr-defined]
        return False

    def of(kind: type[BaseModel]) -> list[Any]:
        return [r for _, r in parsed if isinstance(r, kind) and about_patient(r)]

    return Resources(
        patient=patient,
        conditions=tuple(of(fr.Condition)),
        observations=tuple(of(fr.Observation)),
        medication_requests=tuple(of(fr.MedicationRequest)),
        medication_statements=tuple(of(fr.MedicationStatement)),
        medications=medications,
    )
