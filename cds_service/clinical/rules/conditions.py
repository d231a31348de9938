"""Problems on the list that mimic or worsen RLS: neuropathy and spine, veins, arteries, DVT.

Each fires on an active Condition in its value set (prior DVT also on a resolved one) and
suggests the test that characterises it, unless that test is already ordered or was done
within the recency window; the card then says so instead.
"""

from __future__ import annotations

from cds_service.clinical.facts import ConditionFact
from cds_service.clinical.findings import Finding, NoCard
from cds_service.clinical.picture import PatientPicture
from cds_service.clinical.rules.common import (
    Params,
    already_on_record,
    condition_point,
    names,
    order_point,
)

NEUROPATHY = "neuropathy"
RADICULOPATHY = "radiculopathy-spine"
VENOUS = "venous-insufficiency"
PAD = "peripheral-arterial-disease"
DVT_HISTORY = "dvt-history"
DVT_ACUTE = "dvt-acute"
#: Clinical statuses that make an acute DVT a past one (absent status means active).
PAST = frozenset({"resolved", "inactive", "remission"})


def neuropathy_or_radiculopathy(picture: PatientPicture, t: Params) -> list[Finding]:
    """`neuropathy-or-radiculopathy`: a mimic or contributor; nerve conduction study/EMG."""
    found = [*picture.active_conditions(NEUROPATHY), *picture.active_conditions(RADICULOPATHY)]
    return _problem_card(
        picture, t, "neuropathy-or-radiculopathy", found, "order-nerve-conduction",
        "A nerve conduction study or EMG", "active neuropathy or radiculopathy",
    )  # fmt: skip


def venous_insufficiency(picture: PatientPicture, t: Params) -> list[Finding]:
    """`venous-insufficiency`: chronic venous disease of the legs; venous duplex."""
    found = picture.active_conditions(VENOUS)
    return _problem_card(
        picture, t, "venous-insufficiency", found, "order-venous-duplex", "A venous duplex",
        "active venous insufficiency",
    )  # fmt: skip


def peripheral_arterial_disease(picture: PatientPicture, t: Params) -> list[Finding]:
    """`peripheral-arterial-disease`: claudication mimics RLS; ankle-brachial index."""
    found = picture.active_conditions(PAD)
    return _problem_card(
        picture, t, "peripheral-arterial-disease", found, "order-ankle-brachial-index",
        "An ankle-brachial index", "active peripheral arterial disease",
    )  # fmt: skip


def prior_dvt(picture: PatientPicture, t: Params) -> list[Finding]:
    """`prior-dvt`: a DVT in the past: a history code, a chronic DVT, an acute DVT that has
    resolved, or an acute-DVT entry that began more than `acute_dvt_history_days` ago even
    when still marked active (problem lists keep such entries active for years). An acute DVT
    begun within that time is a current clot, not a history: no card; nor one with no date,
    which cannot be told from a current clot."""
    earliest = picture.now - t.window("acute_dvt_history_days")
    found = [
        *picture.conditions_in(DVT_HISTORY),
        *(
            c
            for c in picture.conditions_in(DVT_ACUTE)
            if c.clinical_status in PAST or (c.since is not None and c.since < earliest)
        ),
    ]
    looked_for = (
        f"past DVT (an acute DVT begun within {t['acute_dvt_history_days']:g} days, "
        "or undated, counts as a current clot)"
    )
    findings = _problem_card(
        picture, t, "prior-dvt", found, "order-venous-duplex", "A venous duplex", looked_for
    )
    if findings and findings[0].suggestions is None and picture.active_conditions(VENOUS):
        finding = findings[0]
        return [
            Finding(
                finding.topic,
                finding.variant,
                finding.values,
                finding.data,
                suggestions=(),
                notes=("The venous insufficiency card offers the venous duplex.",),
            )
        ]
    return findings


def _problem_card(
    picture: PatientPicture,
    t: Params,
    topic: str,
    found: list[ConditionFact],
    order_set: str,
    what: str,
    looked_for: str,
) -> list[Finding]:
    if not found:
        return NoCard(
            "no-condition",
            f"no {looked_for} on the problem list (conditions read: {len(picture.conditions)})",
        )
    unique = list({c.source: c for c in found}.values())
    data = [condition_point(c) for c in unique]
    order, note = already_on_record(picture, order_set, t.window(), what)
    if order is not None:
        data.append(order_point(order))
    return [
        Finding(
            topic,
            "default",
            {"conditions": names(unique)},
            tuple(data),
            suggestions=() if order else None,
            notes=(note,) if note else (),
        )
    ]
