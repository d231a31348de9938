"""Runs the rules over a PatientPicture: the gate first, then each topic's check.

Each topic in ``cards/`` must have a rule here and each rule a card; the mismatch is a
start-up error, not a missing card in the chart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from cds_service.clinical.dosing import DrugDosing
from cds_service.clinical.facts import MedicationFact
from cds_service.clinical.findings import Finding
from cds_service.clinical.picture import PatientPicture
from cds_service.clinical.rules import conditions, iron, kidney, medications, pregnancy
from cds_service.clinical.rules.common import Params

Check = Callable[[PatientPicture, Params], list[Finding]]


@dataclass(frozen=True)
class Rule:
    """A topic's check and the kinds of data it cannot decide without."""

    check: Check
    needs: frozenset[str]


#: The gate (active RLS) reads conditions; without them no rule can run.
GATE_NEEDS = frozenset({"conditions"})
MEDS = frozenset({"medications"})
LABS = frozenset({"labs"})
NONE: frozenset[str] = frozenset()


def patient_view_rules(dosing: Mapping[str, DrugDosing]) -> dict[str, Rule]:
    """Every patient-view topic's rule, in contract order (docs/card-topics.md)."""
    return {
        "iron-studies-due": Rule(iron.studies_due, LABS),
        "iron-below-target": Rule(iron.below_target, LABS),
        "renal-function-due": Rule(kidney.renal_function_due, LABS),
        "kidney-disease": Rule(kidney.kidney_disease, LABS),
        "gabapentinoid-renal-dose": Rule(kidney.GabapentinoidDose(dosing).check, LABS | MEDS),
        "pregnancy": Rule(pregnancy.pregnancy, NONE),
        "neuropathy-or-radiculopathy": Rule(conditions.neuropathy_or_radiculopathy, NONE),
        "sedating-antihistamine": Rule(medications.sedating_antihistamine, MEDS),
        "serotonergic-antidepressant": Rule(medications.serotonergic_antidepressant, MEDS),
        "antipsychotic": Rule(medications.antipsychotic, MEDS),
        "dopamine-antagonist-antiemetic": Rule(medications.dopamine_antagonist_antiemetic, MEDS),
        "dopamine-agonist-augmentation": Rule(medications.dopamine_agonist_augmentation, MEDS),
        "venous-insufficiency": Rule(conditions.venous_insufficiency, NONE),
        "peripheral-arterial-disease": Rule(conditions.peripheral_arterial_disease, NONE),
        "prior-dvt": Rule(conditions.prior_dvt, NONE),
    }


#: docs/card-topics.md "Order hooks": the topics a draft medication order can fire.
ORDER_TOPICS = (
    "gabapentinoid-renal-dose",
    "sedating-antihistamine",
    "serotonergic-antidepressant",
    "antipsychotic",
    "dopamine-antagonist-antiemetic",
    "dopamine-agonist-augmentation",
)
OrderHook = Literal["order-select", "order-sign"]


class Engine:
    """The patient-view rules bound to their thresholds and dose tables from the cards."""

    def __init__(
        self,
        thresholds: Mapping[str, Mapping[str, float]],
        dosing: Mapping[str, DrugDosing],
    ):
        self._rules = patient_view_rules(dosing)
        missing = set(self._rules) - set(thresholds)
        unruled = set(thresholds) - set(self._rules)
        if missing or unruled:
            raise ValueError(
                f"rules without cards: {sorted(missing)}; cards without rules: {sorted(unruled)}"
            )
        self._params = {
            topic: Params(thresholds[topic], thresholds, dosing) for topic in self._rules
        }

    def patient_view(self, picture: PatientPicture) -> list[Finding]:
        """Findings for a chart opening; none unless the patient has active RLS.

        A rule whose data could not be read is skipped: "no ferritin on record" must not be
        concluded from a lab query that timed out.
        """
        if GATE_NEEDS & picture.unavailable or not picture.has_rls:
            return []
        findings: list[Finding] = []
        for topic, rule in self._rules.items():
            if not rule.needs & picture.unavailable:
                findings.extend(rule.check(picture, self._params[topic]))
        return findings

    def order_view(
        self, picture: PatientPicture, drafts: Sequence[MedicationFact], hook: OrderHook
    ) -> list[Finding]:
        """Findings about draft orders (the ones the clinician is acting on), never about
        medications already on the record; none unless the patient has active RLS.

        The medication rules run over a picture whose medications are the drafts; their
        findings take the draft variants of the same cards. Every draft card is a warning,
        except a dose above the renal limit at signing, which is critical (docs/card-topics.md).
        """
        if GATE_NEEDS & picture.unavailable or not picture.has_rls or not drafts:
            return []
        ordering = replace(picture, medications=tuple(drafts))
        findings: list[Finding] = []
        for topic in ORDER_TOPICS:
            rule = self._rules[topic]
            if (rule.needs - {"medications"}) & picture.unavailable:
                continue
            for finding in rule.check(ordering, self._params[topic]):
                variant = "draft" if finding.variant == "default" else f"draft-{finding.variant}"
                critical = hook == "order-sign" and finding.variant == "above-limit"
                findings.append(
                    replace(
                        finding, variant=variant, indicator="critical" if critical else "warning"
                    )
                )
        return findings
