"""Runs the rules over a PatientPicture: the gate first, then each topic's check.

Each topic in ``cards/`` must have a rule here and each rule a card; the mismatch is a
start-up error, not a missing card in the chart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cds_service.clinical.findings import Finding
from cds_service.clinical.picture import PatientPicture
from cds_service.clinical.rules import iron

Check = Callable[[PatientPicture, Mapping[str, float]], list[Finding]]


@dataclass(frozen=True)
class Rule:
    """A topic's check and the kinds of data it cannot decide without."""

    check: Check
    needs: frozenset[str]


#: The gate (active RLS) reads conditions; without them no rule can run.
GATE_NEEDS = frozenset({"conditions"})

PATIENT_VIEW_RULES: Mapping[str, Rule] = {
    "iron-studies-due": Rule(iron.studies_due, frozenset({"labs"})),
    "iron-below-target": Rule(iron.below_target, frozenset({"labs", "conditions"})),
}


class Engine:
    """The patient-view rules bound to their thresholds from the card definitions."""

    def __init__(self, thresholds: Mapping[str, Mapping[str, float]]):
        missing = set(PATIENT_VIEW_RULES) - set(thresholds)
        unruled = set(thresholds) - set(PATIENT_VIEW_RULES)
        if missing or unruled:
            raise ValueError(
                f"rules without cards: {sorted(missing)}; cards without rules: {sorted(unruled)}"
            )
        self._thresholds = thresholds

    def patient_view(self, picture: PatientPicture) -> list[Finding]:
        """Findings for a chart opening; none unless the patient has active RLS.

        A rule whose data could not be read is skipped: "no ferritin on record" must not be
        concluded from a lab query that timed out.
        """
        if GATE_NEEDS & picture.unavailable or not picture.has_rls:
            return []
        findings: list[Finding] = []
        for topic, rule in PATIENT_VIEW_RULES.items():
            if not rule.needs & picture.unavailable:
                findings.extend(rule.check(picture, self._thresholds[topic]))
        return findings
