"""The CDS services this deployment offers: one per hook, ids fixed by contract (design.md).

Prefetch templates fetch what the rules read; the lab query lists the LOINC codes of the
lab value sets, so adding a code to a value set also adds it to the query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cds_service.clinical.terminology import LOINC, ValueSet
from cds_service.clinical.units import CANONICAL

PATIENT_VIEW = "rls-secondary-causes"
ORDER_SELECT = "rls-order-select"
ORDER_SIGN = "rls-order-sign"
#: Labs per search page; the client follows next links up to RLS_CDS_FHIR_MAX_PAGES pages.
LAB_PAGE_SIZE = 100


@dataclass(frozen=True)
class ServiceDefinition:
    """One entry of the discovery document."""

    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str]

    def discovery_entry(self, demo: bool) -> dict:
        description = self.description
        if demo:
            description += " DEMO MODE: requests are not authenticated; not for patient data."
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": description,
            "prefetch": dict(self.prefetch),
        }


def prefetch_templates(value_sets: Mapping[str, ValueSet]) -> dict[str, str]:
    """Templates for the patient, conditions, labs (by LOINC) and active medications."""
    loinc_codes = [
        code
        for analyte in CANONICAL
        if analyte in value_sets
        for code in value_sets[analyte].codes_for(LOINC)
    ]
    patient = "{{context.patientId}}"
    return {
        "patient": f"Patient/{patient}",
        "conditions": f"Condition?patient={patient}",
        "labs": f"Observation?patient={patient}&code="
        + ",".join(f"{LOINC}|{code}" for code in loinc_codes)
        + f"&_sort=-date&_count={LAB_PAGE_SIZE}",
        "medicationRequests": f"MedicationRequest?patient={patient}&status=active,on-hold",
        "medicationStatements": (
            f"MedicationStatement?patient={patient}&status=active,intended,unknown"
        ),
    }


def build_services(value_sets: Mapping[str, ValueSet]) -> dict[str, ServiceDefinition]:
    """The three services, keyed by id, in discovery order."""
    prefetch = prefetch_templates(value_sets)
    services = [
        ServiceDefinition(
            id=PATIENT_VIEW,
            hook="patient-view",
            title="RLS secondary and vascular causes",
            description=(
                "For patients with restless legs syndrome: checks iron status and other "
                "secondary causes, with evidence-graded cards and one-click orders."
            ),
            prefetch=prefetch,
        ),
        ServiceDefinition(
            id=ORDER_SELECT,
            hook="order-select",
            title="RLS medication safety (order select)",
            description=(
                "For patients with restless legs syndrome: flags selected draft medications "
                "that can worsen RLS and offers safer choices."
            ),
            prefetch=prefetch,
        ),
        ServiceDefinition(
            id=ORDER_SIGN,
            hook="order-sign",
            title="RLS medication safety (order sign)",
            description=(
                "For patients with restless legs syndrome: checks draft medications at signing "
                "for drugs that worsen RLS and for kidney-adjusted gabapentinoid doses."
            ),
            prefetch=prefetch,
        ),
    ]
    return {service.id: service for service in services}
