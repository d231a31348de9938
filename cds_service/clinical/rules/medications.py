"""Drugs that worsen RLS, and dopaminergic drugs that cause augmentation.

One card per class names every culprit. Orders (MedicationRequest) can be acted on: the
card's delete actions target them. A medication the patient reports (MedicationStatement)
cannot be cancelled from here, and the card says so.
"""

from __future__ import annotations

from dataclasses import replace

from cds_service.clinical.findings import CardNote, Finding, NoCard, Target
from cds_service.clinical.indications import indication_on_record
from cds_service.clinical.picture import PatientPicture
from cds_service.clinical.rules.common import Params, condition_point, medication_point, names
from cds_service.clinical.rules.pregnancy import is_pregnant

PARKINSON = "parkinson-disease"
REPORTED_ONLY = (
    "{names} is recorded as taken by the patient, not as an order here: "
    "stopping it means telling the patient and updating the medication list."
)


def _class_card(picture: PatientPicture, topic: str, value_set: str, variant: str) -> list[Finding]:
    culprits = picture.medications_in(value_set)
    if not culprits:
        return NoCard(
            "no-medication",
            f"no {value_set.replace('-', ' ')} among the medications "
            f"(medications read: {len(picture.medications)})",
        )
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
    """By indication (docs/card-topics.md, "Sedating antihistamines"): a non-sedating
    antihistamine replaces the drug only when an allergic indication is on record (the
    order's reason, else the problem list); otherwise the card offers stopping or reviewing
    it with nothing pre-selected. An indication on record (hydroxyzine for anxiety,
    meclizine for vertigo, doxylamine-pyridoxine in pregnancy) is named."""
    found = _class_card(picture, "sedating-antihistamine", "sedating-antihistamine", "default")
    if not found:
        return found  # its NoCard: why no card
    pregnant = is_pregnant(picture, t)
    culprits = list(
        {m.source: m for m in picture.medications_in("sedating-antihistamine")}.values()
    )
    allergic = False
    notes: list[CardNote] = []
    for medication in culprits:
        for indication in t.indications.values():
            if not indication_on_record(indication, medication, picture, pregnant):
                continue
            allergic = allergic or indication.allergic
            values = {"medication": medication.name, "indication": indication.name}
            notes.append(
                CardNote("antihistamine-indication", values | {"advice": indication.advice})
            )
    return [
        replace(f, variant="allergy" if allergic else f.variant, card_notes=tuple(notes))
        for f in found
    ]


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
    """With Parkinson disease on the problem list the drug treats it: the card says not to
    stop, taper or switch it for RLS (withdrawal risks parkinsonism-hyperpyrexia) and never
    points to an alpha-2-delta ligand. In pregnancy it does not point to one either."""
    if picture.active_conditions(PARKINSON):
        variant = "parkinson"
    elif is_pregnant(picture, t):
        variant = "pregnancy"
    else:
        variant = "default"
    found = _class_card(picture, "dopamine-agonist-augmentation", "dopamine-agonist", variant)
    if found and variant == "parkinson":
        conditions = names(picture.active_conditions(PARKINSON))
        return [
            replace(
                f,
                values={**f.values, "conditions": conditions},
                data=(*f.data, *(condition_point(c) for c in picture.active_conditions(PARKINSON))),
                targets=(),  # nothing to cancel or stop: the drug stays
            )
            for f in found
        ]
    return found
