"""Pregnancy: RLS is common late in pregnancy; iron first, and no dopaminergic drugs.

"Pregnant now" is read so that a pregnancy is never missed, whatever form the record gives
it (docs/card-topics.md, pregnancy detection): an active pregnancy Condition that began within the
pregnancy window (or has no date); a positive pregnancy test within the window (coded or
text Positive, Detected, Reactive; a quantitative hCG at or above ``hcg_positive_at``); a
gestational age within the window that is still a pregnancy today. A negative test (or an
hCG below ``hcg_negative_below``) newer than all of that evidence ends it. Delivery and
puerperium codes are not a pregnancy (the value set and the trimester character leave them
out).

The pregnancy is dated, where the record allows, from the newest gestational age, Z3A week
code or O-code trimester character: the trimester today decides whether IV iron may be
offered (iron_gate.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cds_service.clinical.facts import ConditionFact, LabResult
from cds_service.clinical.findings import DataPoint, Finding, NoCard
from cds_service.clinical.picture import PatientPicture
from cds_service.clinical.rules.common import (
    Params,
    already_on_record,
    at_least,
    below,
    condition_point,
    format_lab,
    lab_points,
)

TOPIC = "pregnancy"
PREGNANCY = "pregnancy"
FERRITIN = "ferritin"
HCG = "hcg-quantitative"
GESTATIONAL_AGE = "gestational-age"
ORDER_IRON = "order-iron-studies"
#: Tests dated up to a day ahead still count (clock skew between systems).
SKEW = timedelta(days=1)
WEEK = timedelta(weeks=1)
ORDINAL = {1: "first", 2: "second", 3: "third"}


@dataclass(frozen=True)
class _Sign:
    """One piece of evidence for or against a current pregnancy."""

    positive: bool
    when: datetime | None
    point: DataPoint
    weeks: float | None = None
    """The least gestational age it states at `when`, for evidence that dates the pregnancy."""


@dataclass(frozen=True)
class Pregnancy:
    """A current pregnancy: the evidence for it, and how far it has gone when the record
    dates it."""

    evidence: tuple[DataPoint, ...]
    weeks: float | None
    """The least gestational age today, from the newest dated evidence (None: not dated)."""
    dated_by: DataPoint | None
    trimester: int | None
    """1, 2 or 3 today; None when nothing dates the pregnancy or the dating is implausible."""

    def gestation_point(self) -> DataPoint | None:
        """The dating shown on a card: "at least 20 weeks today (second trimester)"."""
        if self.dated_by is None or self.weeks is None:
            return None
        trimester = ORDINAL.get(self.trimester or 0)
        stage = f"{trimester} trimester" if trimester else "trimester not known"
        value = f"at least {self.weeks:.0f} weeks today ({stage}), from {self.dated_by.value}"
        return DataPoint("Gestation", value, self.dated_by.when, self.dated_by.source)


def current(picture: PatientPicture, t: Params) -> Pregnancy | None:
    """The current pregnancy, or None when nothing current says the patient is pregnant.

    `t` may be any topic's parameters: the pregnancy card's thresholds are read from them.
    """
    p = t.of(TOPIC)
    window = timedelta(days=p["window_days"])
    earliest = picture.now - window
    signs = [s for s in _signs(picture, p) if s.when is None or earliest <= s.when]
    latest_negative = max(
        (s.when for s in signs if not s.positive and s.when is not None), default=None
    )
    if latest_negative is not None:
        signs = [s for s in signs if s.positive and (s.when is None or s.when > latest_negative)]
    positives = [s for s in signs if s.positive]
    if not positives:
        return None
    weeks, dated_by = _dating(positives, picture.now)
    trimester = None
    if weeks is not None and weeks <= p["gestation_max_weeks"]:
        trimester = _trimester(weeks, p)
    return Pregnancy(tuple(s.point for s in positives), weeks, dated_by, trimester)


def is_pregnant(picture: PatientPicture, params: Params) -> bool:
    return current(picture, params) is not None


def _signs(picture: PatientPicture, p: Mapping[str, float]) -> list[_Sign]:
    """Every sign of a pregnancy, or of none, dated no later than now (plus skew)."""
    latest = picture.now + SKEW
    signs: list[_Sign] = []
    for condition in picture.active_conditions(PREGNANCY):
        signs.append(
            _Sign(True, condition.since, condition_point(condition), _condition_weeks(condition, p))
        )
    for result in picture.pregnancy_results:
        if result.when <= latest:
            value = "positive" if result.positive else "negative"
            signs.append(
                _Sign(
                    result.positive,
                    result.when,
                    DataPoint(result.name, value, result.when, result.source),
                )
            )
    for hcg in picture.on_record(HCG):
        if at_least(hcg, p["hcg_positive_at"]):
            signs.append(_Sign(True, hcg.effective, _lab_point(hcg, "positive")))
        elif below(hcg, p["hcg_negative_below"]):
            signs.append(_Sign(False, hcg.effective, _lab_point(hcg, "negative")))
    for age in picture.on_record(GESTATIONAL_AGE):
        today = age.value + (picture.now - age.effective) / WEEK
        if age.comparator is None and today <= p["gestation_max_weeks"]:
            signs.append(_Sign(True, age.effective, _lab_point(age, "pregnant"), age.value))
    return signs


def _condition_weeks(condition: ConditionFact, p: Mapping[str, float]) -> float | None:
    """The least gestational age a pregnancy code states at its date."""
    gestation = condition.gestation
    if gestation is None:
        return None
    if gestation.weeks is not None:
        return gestation.weeks
    starts = {1: 0.0, 2: p["second_trimester_weeks"], 3: p["third_trimester_weeks"]}
    return starts.get(gestation.trimester or 0)


def _dating(signs: list[_Sign], now: datetime) -> tuple[float | None, DataPoint | None]:
    """The least gestational age today from the newest evidence that dates the pregnancy
    (an undated code only when nothing dated does: its weeks are taken as they stand)."""
    dating = [s for s in signs if s.weeks is not None]
    if not dating:
        return None, None
    newest = max(dating, key=lambda s: (s.when is not None, s.when or now))
    assert newest.weeks is not None
    elapsed = (now - newest.when) / WEEK if newest.when else 0.0
    return newest.weeks + max(elapsed, 0.0), newest.point


def _trimester(weeks: float, p: Mapping[str, float]) -> int:
    """ICD-10-CM trimesters: first under 14 weeks 0 days, second under 28 weeks 0 days."""
    if weeks < p["second_trimester_weeks"]:
        return 1
    return 2 if weeks < p["third_trimester_weeks"] else 3


def _lab_point(lab: LabResult, reading: str) -> DataPoint:
    return DataPoint(lab.name, f"{format_lab(lab)} ({reading})", lab.effective, lab.source)


def pregnancy(picture: PatientPicture, t: Params) -> list[Finding]:
    """`pregnancy`: pregnant now; ferritin and its pregnancy target, and drugs to avoid."""
    found = current(picture, t)
    if found is None:
        return NoCard(
            "not-pregnant",
            "no current pregnancy on record (pregnancy conditions, tests and gestational "
            f"age read; conditions read: {len(picture.conditions)})",
        )
    points = [*found.evidence]
    dating = found.gestation_point()
    if dating is not None:
        points.append(dating)
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
        if below(ferritin, t["ferritin_target"]):
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
