"""The facts a PatientPicture holds, and the value sets each kind of resource is matched
against (knowledge.py checks at start-up that every one of them exists)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.units import CANONICAL

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
REQUIRED_VALUE_SETS = (
    *CONDITION_VALUE_SETS, *MEDICATION_VALUE_SETS, *ORDER_VALUE_SETS,
    PREGNANCY_TEST, PREGNANCY_POSITIVE, PREGNANCY_NEGATIVE, *CANONICAL,
)  # fmt: skip


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
