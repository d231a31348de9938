"""The facts a PatientPicture holds, and the value sets each kind of resource is matched
against (knowledge.py checks at start-up that every one of them exists)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.gestation import Gestation
from cds_service.clinical.units import CANONICAL

RLS = "rls"
#: Indications a medication may be given for (its reasonCode, reasonReference or the problem
#: list): what the sedating-antihistamine card needs to know (cards/sedating-antihistamine.toml).
INDICATION_VALUE_SETS = (
    "allergic-indication", "anxiety", "vertigo", "nausea-vomiting-pregnancy", "insomnia",
)  # fmt: skip
#: Value sets each kind of resource is matched against (knowledge.py checks they exist).
CONDITION_VALUE_SETS = (
    "rls", "esrd-dialysis", "dialysis", "ckd-stage-3-5", "ckd-stage-4-5", "pregnancy",
    "neuropathy",
    "radiculopathy-spine", "venous-insufficiency", "peripheral-arterial-disease",
    "dvt-history", "dvt-acute", "iron-overload", "poor-iron-absorption", "coeliac-disease",
    "parkinson-disease", *INDICATION_VALUE_SETS,
)  # fmt: skip
PREGNANCY = "pregnancy"
MEDICATION_VALUE_SETS = (
    "sedating-antihistamine", "dopamine-antagonist-antiemetic", "antipsychotic",
    "serotonergic-antidepressant", "dopamine-agonist", "gabapentin", "pregabalin",
    "gabapentin-enacarbil", "gabapentin-once-daily", "pregabalin-extended-release",
    "iron-oral", "iron-iv", "hydroxyzine", "meclizine-dimenhydrinate", "doxylamine-pyridoxine",
)  # fmt: skip
ORDER_VALUE_SETS = (
    "order-iron-studies", "order-kidney-function", "order-venous-duplex",
    "order-nerve-conduction", "order-ankle-brachial-index", "order-gi-evaluation",
    "order-coeliac-serology",
)  # fmt: skip
#: Order value sets whose result Observation (of any value) shows the test was done.
OBSERVED_ORDER_VALUE_SETS = ("order-coeliac-serology",)
PREGNANCY_TEST = "pregnancy-test"
PREGNANCY_POSITIVE = "pregnancy-positive"
PREGNANCY_NEGATIVE = "pregnancy-negative"
REQUIRED_VALUE_SETS = (
    *CONDITION_VALUE_SETS, *MEDICATION_VALUE_SETS, *ORDER_VALUE_SETS,
    PREGNANCY_TEST, PREGNANCY_POSITIVE, PREGNANCY_NEGATIVE, *CANONICAL,
)  # fmt: skip


class LabResult(NamedTuple):
    """One lab value in its analyte's canonical unit, with where it came from.

    A NamedTuple, not a frozen dataclass: a large record makes hundreds of these per call,
    and a frozen dataclass sets each field through object.__setattr__ (half the cost of
    reading the labs).
    """

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
    gestation: Gestation | None = None
    """For a pregnancy condition, the trimester or weeks its code states (at `since`)."""

    @property
    def since(self) -> datetime | None:
        """When the condition began, or failing that when it was recorded."""
        return self.onset or self.recorded


@dataclass(frozen=True)
class MedicationFact:
    """A medication (request, statement or administration), tagged with its value sets:
    active ones in ``PatientPicture.medications``, past ones in ``medication_history``."""

    name: str
    value_sets: frozenset[str]
    status: str
    source: str
    when: datetime | None = None
    dosages: tuple[fr.Dosage, ...] = ()
    request: fr.MedicationRequest | None = field(default=None, repr=False, compare=False)
    """The MedicationRequest read; None for statements."""
    reasons: frozenset[str] = frozenset()
    """Indication value sets its ``reasonCode`` is in (allergic rhinitis, anxiety, ...)."""
    reason_references: tuple[str, ...] = ()
    """Its ``reasonReference`` as ``Condition/<id>``, for the rules to look up."""

    @property
    def raw(self) -> Mapping[str, Any] | None:
        """The MedicationRequest as received, for an update suggestion (parsed only when a
        rule asks); None for statements."""
        return self.request.raw if self.request is not None else None

    @property
    def is_request(self) -> bool:
        return self.source.startswith("MedicationRequest/")

    @property
    def is_administration(self) -> bool:
        return self.source.startswith("MedicationAdministration/")


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
