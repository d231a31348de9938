"""The iron gate as a pure function: facts and thresholds in, offers let through out.

The engine-level paths (records to cards) are in test_iron_safety.py; here each check of the
gate alone, including the TSAT cap that the overload rule normally reaches first.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cds_service.clinical.facts import ConditionFact, LabResult, MedicationFact
from cds_service.clinical.findings import DataPoint
from cds_service.clinical.iron_gate import IronFacts, IronProduct, gate
from tests import builders as b

LIMITS = b.KNOWLEDGE.thresholds["iron-below-target"]
WHEN = datetime(2026, 10, 15, tzinfo=UTC)
ORAL = IronProduct("oral")
BY_WEIGHT = IronProduct("oral", "weight-based")
IV = IronProduct("iv")
OFFERS = {"oral": ORAL, "by-weight": BY_WEIGHT, "iv": IV}


def lab(analyte: str, value: float, comparator: str | None = None) -> LabResult:
    return LabResult(analyte, value, "x", WHEN, analyte, "Observation/1", comparator)


SAFE = IronFacts(
    ferritin=lab("ferritin", 30),
    tsat=lab("transferrin-saturation", 15),
    overload=(),
    on_record=(),
    age=40,
    weight=lab("body-weight", 60),
    pregnant=False,
    trimester=None,
    poor_absorption=(),
)


def passed(facts: IronFacts, offers=OFFERS) -> tuple[tuple[str, ...], dict[str, str]]:
    result = gate(offers, facts, LIMITS)
    return result.allowed, {k: n.key for k, n in result.withheld.items()}


def test_an_adult_with_low_iron_gets_every_offer():
    assert passed(SAFE) == (("oral", "by-weight", "iv"), {})


@pytest.mark.parametrize(
    ("change", "note"),
    [
        ({"medications_read": False}, "iron-medications-unread"),
        ({"overload": (DataPoint("Problem list", "HH", None, "Condition/1"),)}, "iron-overload"),
        ({"on_record": (MedicationFact("ferrous sulfate", frozenset(), "active", "x"),)},
         "iron-on-record"),
        ({"ferritin": None}, "iron-no-ferritin"),
        ({"ferritin": lab("ferritin", 300)}, "iron-ferritin-replete"),
        ({"ferritin": lab("ferritin", 300, ">")}, "iron-ferritin-replete"),
    ],
)  # fmt: skip
def test_checks_that_withhold_all_iron(change, note):
    allowed, withheld = passed(replace(SAFE, **change))
    assert allowed == ()
    assert set(withheld.values()) == {note}


@pytest.mark.parametrize(("value", "comparator"), [(299, None), (299.9, None), (300, "<")])
def test_ferritin_just_under_300_lets_iron_through(value, comparator):
    assert passed(replace(SAFE, ferritin=lab("ferritin", value, comparator)))[0] == (
        "oral", "by-weight", "iv",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "withheld"),
    [
        ({"tsat": None}, {"iv": "iron-iv-no-tsat"}),
        ({"tsat": lab("transferrin-saturation", 45)}, {"iv": "iron-iv-tsat-high"}),
        ({"tsat": lab("transferrin-saturation", 44, ">")}, {}),
        ({"tsat": lab("transferrin-saturation", 45, "<")}, {}),
        ({"history_read": False}, {"iv": "iron-iv-history-unread"}),
        ({"age": None}, {"iv": "iron-iv-age-unknown"}),
        ({"age": 17}, {"iv": "iron-iv-child", "oral": "iron-child-fixed-dose"}),
        ({"age": 18}, {}),
        ({"weight": None}, {"by-weight": "iron-weight-needed"}),
        ({"pregnant": True}, {"iv": "iron-iv-pregnancy"}),
        ({"pregnant": True, "trimester": 1}, {"iv": "iron-iv-pregnancy"}),
        ({"pregnant": True, "trimester": 2}, {}),
        ({"pregnant": True, "trimester": 3}, {}),
        (
            {"poor_absorption": (ConditionFact("Z98.84", frozenset(), True, None, "C/1"),)},
            {"oral": "iron-poor-absorption", "by-weight": "iron-poor-absorption"},
        ),
    ],
)
def test_checks_by_route_and_dose(change, withheld):
    allowed, found = passed(replace(SAFE, **change))
    assert found == withheld
    assert set(allowed) == set(OFFERS) - set(withheld)


def test_a_reason_names_the_trimester():
    result = gate({"iv": IV}, replace(SAFE, pregnant=True, trimester=1), LIMITS)
    assert result.withheld["iv"].values == {"trimester": "first"}
    result = gate({"iv": IV}, replace(SAFE, pregnant=True), LIMITS)
    assert result.withheld["iv"].values == {"trimester": "not known"}
