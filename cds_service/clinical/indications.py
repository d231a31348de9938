"""What a drug is given for, as the card files describe it (``[indications.<key>]`` of
cards/sedating-antihistamine.toml), and how a rule reads it off the record.

The indication is on record when the order's ``reasonCode`` or ``reasonReference`` names it,
or, when the order names no reason, when it is on the problem list (or, for an indication
that pregnancy implies, when the patient is pregnant). A reason on the order wins over the
problem list: hydroxyzine ordered for anxiety is not an allergy drug because the patient also
has hay fever on the list.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cds_service.clinical.facts import ConditionFact, MedicationFact
from cds_service.clinical.picture import PatientPicture


class IndicationDef(BaseModel):
    """One indication: its value set, the drugs it is named for, and what the card says."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    """How the card names it ("anxiety", "an allergic condition")."""
    value_set: str = Field(min_length=1)
    """Conditions and reason codes that are this indication."""
    drugs: str | None = None
    """The value set of the drugs it is named for (hydroxyzine for anxiety); None: any."""
    allergic: bool = False
    """An allergic indication: a non-sedating antihistamine may replace the drug."""
    when_pregnant: bool = False
    """A current pregnancy is this indication too (doxylamine-pyridoxine)."""
    advice: str = Field(min_length=1)
    """The sentence the card adds when the indication is on record."""


def reasons_of(medication: MedicationFact, picture: PatientPicture) -> frozenset[str]:
    """The indication value sets the order itself gives: its reason codes and the
    Conditions its reasonReference points at (not refuted, whatever their status)."""
    referenced = [c for c in picture.conditions if c.source in medication.reason_references]
    return medication.reasons | frozenset(v for c in referenced for v in c.value_sets)


def indication_on_record(
    indication: IndicationDef,
    medication: MedicationFact,
    picture: PatientPicture,
    pregnant: bool,
) -> bool:
    """Whether `medication` is given for `indication` as far as the record says."""
    if indication.drugs is not None and indication.drugs not in medication.value_sets:
        return False
    given = reasons_of(medication, picture)
    if given:
        return indication.value_set in given
    listed: list[ConditionFact] = picture.active_conditions(indication.value_set)
    return bool(listed) or (indication.when_pregnant and pregnant)
