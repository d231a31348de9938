"""Pregnancy: RLS is common late in pregnancy; iron first, and no dopaminergic drugs.

"Pregnant now" is read conservatively: an active pregnancy Condition that began within the
pregnancy window (or has no date), or a positive pregnancy test within the window, unless a
negative test is newer than all of that evidence. A delivery or puerperium code is not a
pregnancy (the value set leaves them out).
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.clinical.findings import DataPoint, Finding
from cds_service.clinical.picture import PatientPicture
from cds_service.clinical.rules.common import (
    Params,
    already_on_record,
    condition_point,
    format_lab,
    lab_points,
)

TOPIC = "pregnancy"
PREGNANCY = "pregnancy"
FERRITIN = "ferritin"
ORDER_IRON = "order-iron-studies"
#: Tests dated up to a day ahead still count (clock skew between systems).
SKEW = timedelta(days=1)


def evidence(picture: PatientPicture, window: timedelta) -> list[DataPoint]:
    """The data saying the patient is pregnant now; empty when nothing current does."""
    earliest = picture.now - window
    conditions = [
        c for c in picture.active_conditions(PREGNANCY) if c.since is None or c.since >= earliest
    ]
    tests = sorted(
        (r for r in picture.pregnancy_results if earliest <= r.when <= picture.now + SKEW),
        key=lambda r: r.when,
    )
    positives = [r for r in tests if r.positive]
    latest_negative = next((r for r in reversed(tests) if not r.positive), None)
    if latest_negative is not None:
        conditions = [c for c in conditions if c.since is None or c.since > latest_negative.when]
        positives = [r for r in positives if r.when > latest_negative.when]
    points = [condition_point(c) for c in conditions]
    points += [DataPoint(r.name, "positive", r.when, r.source) for r in positives]
    return points


def is_pregnant(picture: PatientPicture, params: Params) -> bool:
    return bool(evidence(picture, timedelta(days=params.of(TOPIC)["window_days"])))


def pregnancy(picture: PatientPicture, t: Params) -> list[Finding]:
    """`pregnancy`: pregnant now; ferritin and its pregnancy target, and drugs to avoid."""
    points = evidence(picture, t.window("window_days"))
    if not points:
        return []
    if "labs" in picture.unavailable:
        return [
            Finding(
                TOPIC,
                "ferritin-due",
                {"ferritin": "could not be read from the lab results"},
                tuple(points),
                suggestions=(),
                notes=("Lab results could not be read: check the ferritin on record.",),
            )
        ]
    ferritin = picture.latest(FERRITIN, t.window())
    if ferritin is not None:
        note: tuple[str, ...] = ()
        if ferritin.value < t["ferritin_target"] and ferritin.comparator not in (">", ">="):
            note = (f"Ferritin is below the pregnancy target of {t['ferritin_target']:g} ng/mL.",)
        return [
            Finding(
                TOPIC,
                "ferritin-known",
                {"ferritin": format_lab(ferritin)},
                (*points, *lab_points(ferritin)),
                suggestions=(),
                notes=note,
            )
        ]
    order, ordered = already_on_record(picture, ORDER_IRON, t.window(), "Ferritin")
    return [
        Finding(
            TOPIC,
            "ferritin-due",
            {"ferritin": "not measured in the last 12 months"},
            tuple(points),
            suggestions=() if order else None,
            notes=(ordered,) if ordered else (),
        )
    ]
