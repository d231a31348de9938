"""The CDS services this deployment offers: one per hook, ids fixed by contract (CHANGELOG.md).

Prefetch templates fetch what the rules read; the lab query lists the LOINC codes of the
lab value sets, so adding a code to a value set also adds it to the query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cds_service import __version__
from cds_service.clinical.facts import OBSERVED_ORDER_VALUE_SETS, PREGNANCY_TEST
from cds_service.clinical.terminology import LOINC, ValueSet
from cds_service.clinical.units import CANONICAL

PATIENT_VIEW = "rls-secondary-causes"
ORDER_SELECT = "rls-order-select"
ORDER_SIGN = "rls-order-sign"
#: Discovery extension naming the release that answers (spec: Extensions, namespaced keys).
VERSION_EXTENSION = "org.rls-cds.version"
#: Labs per search page; the client follows next links up to RLS_CDS_FHIR_MAX_PAGES pages.
LAB_PAGE_SIZE = 100
ORDER_PAGE_SIZE = 100
#: The newest past medication uses read (IV iron given in the last 12 weeks is among them).
HISTORY_PAGE_SIZE = 50
#: Order value sets that are procedures (the lab ones are found as ServiceRequests).
PROCEDURE_VALUE_SETS = (
    "order-venous-duplex",
    "order-nerve-conduction",
    "order-ankle-brachial-index",
    "order-gi-evaluation",
)
WEIGHT = "body-weight"

#: The kind of data each prefetch key gives the rules: a key that cannot be read makes its
#: kind unavailable, and the rules that need that kind stay silent.
PREFETCH_KINDS: Mapping[str, str] = {
    "patient": "patient",
    "conditions": "conditions",
    "labs": "labs",
    "weight": "weight",
    "medicationRequests": "medications",
    "medicationStatements": "medications",
    "completedMedicationRequests": "medication-history",
    "medicationAdministrations": "medication-history",
    "serviceRequests": "orders",
    "procedures": "orders",
}
#: Keys the rules can do without: when the EHR does not prefetch them and names no FHIR
#: server, the hook still answers (Cockcroft-Gault falls back to eGFR; suggestions are not
#: checked against orders on record; IV iron is not offered without the record of iron
#: given lately) instead of failing with 412.
OPTIONAL_KEYS = frozenset(
    {"weight", "serviceRequests", "procedures", "completedMedicationRequests",
     "medicationAdministrations"}
)  # fmt: skip
#: Keys the order services do without: their cards are about the drafts.
PATIENT_VIEW_ONLY = (
    "serviceRequests",
    "procedures",
    "completedMedicationRequests",
    "medicationAdministrations",
)


@dataclass(frozen=True)
class ServiceDefinition:
    """One entry of the discovery document."""

    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str]

    @staticmethod
    def kind(key: str) -> str | None:
        """The kind of data (see PREFETCH_KINDS) a prefetch key holds."""
        return PREFETCH_KINDS.get(key)

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
            "extension": {VERSION_EXTENSION: __version__},
        }


def prefetch_templates(value_sets: Mapping[str, ValueSet]) -> dict[str, str]:
    """Templates for the patient, conditions, labs, weight, medications (active, and the
    newest past ones: iron given lately) and orders.

    Lab and order queries list the codes of their value sets, so adding a code to a value set
    also adds it to the query.
    """
    lab_sets = [a for a in CANONICAL if a != WEIGHT] + [PREGNANCY_TEST, *OBSERVED_ORDER_VALUE_SETS]
    patient = "{{context.patientId}}"
    return {
        "patient": f"Patient/{patient}",
        "conditions": f"Condition?patient={patient}",
        "labs": f"Observation?patient={patient}&code={_loinc(value_sets, lab_sets)}"
        f"&_sort=-date&_count={LAB_PAGE_SIZE}",
        "weight": f"Observation?patient={patient}&code={_loinc(value_sets, [WEIGHT])}"
        "&_sort=-date&_count=1",
        "medicationRequests": f"MedicationRequest?patient={patient}&status=active,on-hold",
        "medicationStatements": (
            f"MedicationStatement?patient={patient}&status=active,intended,unknown"
        ),
        "completedMedicationRequests": (
            f"MedicationRequest?patient={patient}&status=completed,stopped"
            f"&_sort=-authoredon&_count={HISTORY_PAGE_SIZE}"
        ),
        "medicationAdministrations": (
            f"MedicationAdministration?patient={patient}"
            f"&_sort=-effective-time&_count={HISTORY_PAGE_SIZE}"
        ),
        "serviceRequests": (
            f"ServiceRequest?patient={patient}&status=active,on-hold,completed"
            f"&_sort=-authored&_count={ORDER_PAGE_SIZE}"
        ),
        "procedures": (
            f"Procedure?patient={patient}&code={_any_system(value_sets, PROCEDURE_VALUE_SETS)}"
            f"&_sort=-date&_count={ORDER_PAGE_SIZE}"
        ),
    }


def _loinc(value_sets: Mapping[str, ValueSet], ids: list[str]) -> str:
    codes = [code for i in ids if i in value_sets for code in value_sets[i].codes_for(LOINC)]
    return ",".join(f"{LOINC}|{code}" for code in dict.fromkeys(codes))


def _any_system(value_sets: Mapping[str, ValueSet], ids: tuple[str, ...]) -> str:
    """Every member of the sets as system|code (procedures come coded in CPT or SNOMED)."""
    pairs = [f"{c.system}|{c.code}" for i in ids if i in value_sets for c in value_sets[i].concepts]
    return ",".join(dict.fromkeys(pairs))


def build_services(value_sets: Mapping[str, ValueSet]) -> dict[str, ServiceDefinition]:
    """The three services, keyed by id, in discovery order.

    The order services need no orders, procedures or medication history: their cards are
    about the drafts.
    """
    prefetch = prefetch_templates(value_sets)
    ordering = {k: v for k, v in prefetch.items() if k not in PATIENT_VIEW_ONLY}
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
            prefetch=ordering,
        ),
        ServiceDefinition(
            id=ORDER_SIGN,
            hook="order-sign",
            title="RLS medication safety (order sign)",
            description=(
                "For patients with restless legs syndrome: checks draft medications at signing "
                "for drugs that worsen RLS and for kidney-adjusted gabapentinoid doses."
            ),
            prefetch=ordering,
        ),
    ]
    return {service.id: service for service in services}
