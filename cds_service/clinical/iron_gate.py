"""The iron safety gate: every iron suggestion a card would offer passes `gate` first.

A one-click iron order that could harm is withheld (docs/card-topics.md, safety rules;
docs/evidence.md section 9): iron in iron overload, iron already taken or given, IV iron
without a recent transferrin saturation or at a high ferritin, a fixed adult dose to a
child, IV iron early in pregnancy. Each withheld offer names the card note that says why
(its sentence and thresholds are in the iron card file). The gate is pure: it reads an
IronFacts summary of the patient and the iron card's thresholds, and the engine applies it
to every finding of every rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cds_service.clinical.facts import ConditionFact, LabResult, MedicationFact
from cds_service.clinical.findings import CardNote, DataPoint
from cds_service.clinical.rules.common import at_least, format_lab, names

IronRoute = Literal["oral", "iv"]
IronDose = Literal["fixed", "weight-based"]
ORDINAL = {1: "first", 2: "second", 3: "third"}


@dataclass(frozen=True)
class IronProduct:
    """What a suggestion gives: iron by mouth or IV, at a fixed or a weight-based dose."""

    route: IronRoute
    dose: IronDose = "fixed"


@dataclass(frozen=True)
class IronCatalogue:
    """The iron suggestions of every card, and what a withheld one is replaced with.

    Built from the card files (knowledge.py), so that a new card offering iron is gated
    without any change to the engine.
    """

    products: Mapping[str, Mapping[str, IronProduct]] = field(default_factory=dict)
    """topic -> suggestion key -> product, for the suggestions that give iron."""
    defaults: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    """topic -> variant -> the variant's own suggestion keys."""
    offered: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """topic -> every suggestion key its card defines."""
    instead: Mapping[str, str] = field(default_factory=dict)
    """note key -> the suggestion offered in place of what that note withholds."""


@dataclass(frozen=True)
class IronFacts:
    """What the gate needs to know about the patient, read once per evaluation."""

    ferritin: LabResult | None
    """The latest ferritin of the recent window."""
    tsat: LabResult | None
    """The latest transferrin saturation of the IV window."""
    overload: tuple[DataPoint, ...]
    """What shows iron overload: a condition, or a high transferrin saturation."""
    on_record: tuple[MedicationFact, ...]
    """Iron already taken or given (active oral or IV, IV in the last weeks)."""
    age: int | None
    weight: LabResult | None
    """The latest weight of the weight window."""
    pregnant: bool
    trimester: int | None
    """The trimester today, when the record dates the pregnancy."""
    poor_absorption: tuple[ConditionFact, ...]
    medications_read: bool = True
    history_read: bool = True
    """Whether the record of past medication use (iron given lately) could be read."""


@dataclass(frozen=True)
class Gated:
    """The offers the gate lets through, and for each withheld one the note saying why."""

    allowed: tuple[str, ...]
    withheld: Mapping[str, CardNote]


def gate(offers: Mapping[str, IronProduct], facts: IronFacts, t: Mapping[str, float]) -> Gated:
    """Let through only the iron offers that are safe for this patient.

    `t` are the iron card's thresholds: ``child_age_below``, ``ferritin_replete_from``,
    ``tsat_iv_cap``. Checks that withhold all iron come first, so that one sentence says why
    nothing is offered.
    """
    allowed: list[str] = []
    withheld: dict[str, CardNote] = {}
    every = _withhold_all(facts, t)
    for key, product in offers.items():
        note = every or _withhold(product, facts, t)
        if note is None:
            allowed.append(key)
        else:
            withheld[key] = note
    return Gated(tuple(allowed), withheld)


def _withhold_all(facts: IronFacts, t: Mapping[str, float]) -> CardNote | None:
    if not facts.medications_read:
        return CardNote("iron-medications-unread")
    if facts.overload:
        return CardNote("iron-overload", {"overload": describe_points(facts.overload)})
    if facts.on_record:
        return CardNote("iron-on-record", {"iron_on_record": describe_uses(facts.on_record)})
    ferritin = facts.ferritin
    if ferritin is None:
        return CardNote("iron-no-ferritin")
    if at_least(ferritin, t["ferritin_replete_from"]):
        return CardNote("iron-ferritin-replete", {"ferritin": format_lab(ferritin)})
    return None


def _withhold(product: IronProduct, facts: IronFacts, t: Mapping[str, float]) -> CardNote | None:
    child = facts.age is not None and facts.age < t["child_age_below"]
    if product.route == "oral":
        if facts.poor_absorption:
            return CardNote("iron-poor-absorption", {"absorption": names(facts.poor_absorption)})
        if child and product.dose == "fixed":
            return CardNote("iron-child-fixed-dose")
        if product.dose == "weight-based" and facts.weight is None:
            return CardNote("iron-weight-needed")
        return None
    if facts.age is None:
        return CardNote("iron-iv-age-unknown")
    if child:
        return CardNote("iron-iv-child")
    if facts.pregnant and facts.trimester not in (2, 3):
        trimester = ORDINAL.get(facts.trimester or 0, "not known")
        return CardNote("iron-iv-pregnancy", {"trimester": trimester})
    if not facts.history_read:
        return CardNote("iron-iv-history-unread")
    if facts.tsat is None:
        return CardNote("iron-iv-no-tsat")
    if at_least(facts.tsat, t["tsat_iv_cap"]):
        return CardNote("iron-iv-tsat-high", {"tsat": format_lab(facts.tsat)})
    return None


def describe_points(points: tuple[DataPoint, ...]) -> str:
    """ "Problem list: Hereditary hemochromatosis (active)", several joined with "; "."""
    return "; ".join(dict.fromkeys(f"{p.label}: {p.value}" for p in points))


def describe_uses(uses: tuple[MedicationFact, ...]) -> str:
    """ "ferrous sulfate 325 mg (active order, 2026-09-01)", several joined with "; "."""
    described = []
    for use in uses:
        kind = "given" if use.is_administration else "order" if use.is_request else "reported"
        when = use.when.date().isoformat() if use.when else "date not recorded"
        described.append(f"{use.name} ({use.status} {kind}, {when})")
    return "; ".join(dict.fromkeys(described))
