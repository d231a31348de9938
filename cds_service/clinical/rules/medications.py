"""Drugs that worsen RLS, and dopaminergic drugs that cause augmentation.

One card per class names every culprit. Orders (MedicationRequest) can be acted on: the
card's delete actions target them. A medication the patient reports (MedicationStatement)
cannot be cancelled from here, and the card says so.
"""

from __future__ import annotations

from cds_service.clinical.findings import Finding, Target
from cds_service.clinical.picture import PatientPicture
from cds_service.clinical.rules.common import Params, medication_point, names
from cds_service.clinical.rules.pregnancy import is_pregnant

REPORTED_ONLY = (
    "{names} is recorded as taken by the patient, not as an order here: "
    "stopping it means telling the patient and updating the medication list."
)


def _class_card(picture: PatientPicture, topic: str, value_set: str, variant: str) -> list[Finding]:
    culprits = picture.medications_in(value_set)
    if not culprits:
        return []
    unique = list({m.source: m for m in culprits}.values())
    reported = [m for m in unique if not m.is_request]
    notes = (REPORTED_ONLY.format(names=names(reported)),) if reported else ()
    return [
        Finding(
            topic,
            variant,
            {"medications": names(unique)},
            tuple(medication_point(m) for m in unique),
            notes=notes,
            targets=tuple(Target(m.source, m.name) for m in unique if m.is_request),
        )
    ]


def sedating_antihistamine(picture: PatientPicture, t: Params) -> list[Finding]:
    return _class_card(picture, "sedating-antihistamine", "sedating-antihistamine", "default")


def serotonergic_antidepressant(picture: PatientPicture, t: Params) -> list[Finding]:
    return _class_card(
        picture, "serotonergic-antidepressant", "serotonergic-antidepressant", "default"
    )


def antipsychotic(picture: PatientPicture, t: Params) -> list[Finding]:
    return _class_card(picture, "antipsychotic", "antipsychotic", "default")


def dopamine_antagonist_antiemetic(picture: PatientPicture, t: Params) -> list[Finding]:
    return _class_card(
        picture, "dopamine-antagonist-antiemetic", "dopamine-antagonist-antiemetic", "default"
    )


def dopamine_agonist_augmentation(picture: PatientPicture, t: Params) -> list[Finding]:
    """In pregnancy the card does not point to an alpha-2-delta ligand (none is advised)."""
    variant = "pregnancy" if is_pregnant(picture, t) else "default"
    return _class_card(picture, "dopamine-agonist-augmentation", "dopamine-agonist", variant)
