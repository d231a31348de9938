"""Runs the rules over a PatientPicture: the gate first, then each topic's check, then the
iron safety gate over every finding.

Each topic in ``cards/`` must have a rule here and each rule a card; the mismatch is a
start-up error, not a missing card in the chart. Every iron suggestion of every finding
passes the iron safety gate (iron_gate.py) here, whichever rule proposed it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from cds_service.clinical.dosing import DrugDosing
from cds_service.clinical.facts import RLS, MedicationFact
from cds_service.clinical.findings import CardNote, Decision, Finding, NoCard, Reason
from cds_service.clinical.indications import IndicationDef
from cds_service.clinical.iron_gate import IronCatalogue, IronFacts, gate
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
#: Variants whose draft card is critical at order-sign: a dose above the label's limit for the
#: kidney function, or above its absolute maximum (knowledge.py checks each offers a cancel).
CRITICAL_AT_SIGNING = frozenset({"above-limit", "above-maximum"})


#: A rule that returned no findings without saying why (tests keep every rule from it).
UNEXPLAINED = Reason("unexplained", "the rule found nothing to report")


def gate_reason(picture: PatientPicture) -> Reason | None:
    """Why no rule runs for this patient (docs/card-topics.md's gate), or None."""
    unread = GATE_NEEDS & picture.unavailable
    if unread:
        return unread_reason(unread, "rules not run")
    if picture.deceased:
        return Reason("deceased", "the patient is recorded as deceased: rules not run")
    if picture.has_rls:
        return None
    read = len(picture.conditions)
    rls = [c for c in picture.conditions if RLS in c.value_sets]
    seen = f"{len(rls)} RLS, none active" if rls else "none RLS"
    return Reason(
        "no-active-rls", f"no active RLS condition: rules not run (conditions read: {read}, {seen})"
    )


def unread_reason(kinds: frozenset[str], consequence: str) -> Reason:
    """`labs not read: rule not run` (the evaluator adds why they were not read)."""
    return Reason("not-read", f"{', '.join(sorted(kinds))} not read: {consequence}", kinds)


class Engine:
    """The patient-view rules bound to their thresholds and dose tables from the cards."""

    def __init__(
        self,
        thresholds: Mapping[str, Mapping[str, float]],
        dosing: Mapping[str, DrugDosing],
        iron: IronCatalogue,
        indications: Mapping[str, IndicationDef] | None = None,
    ):
        self._rules = patient_view_rules(dosing)
        self._iron = iron
        missing = set(self._rules) - set(thresholds)
        unruled = set(thresholds) - set(self._rules)
        if missing or unruled:
            raise ValueError(
                f"rules without cards: {sorted(missing)}; cards without rules: {sorted(unruled)}"
            )
        self._params = {
            topic: Params(thresholds[topic], thresholds, dosing, indications)
            for topic in self._rules
        }

    def patient_view(self, picture: PatientPicture) -> list[Finding]:
        """Findings for a chart opening; none unless the patient has active RLS."""
        return self.decide_patient_view(picture)[0]

    def decide_patient_view(
        self, picture: PatientPicture
    ) -> tuple[list[Finding], dict[str, Decision]]:
        """Findings for a chart opening, and each topic's decision: the gate's reason, the
        data it could not read, or the rule's own NoCard.

        A rule whose data could not be read is skipped: "no ferritin on record" must not be
        concluded from a lab query that timed out.
        """
        closed = gate_reason(picture)
        if closed is not None:
            return [], {topic: Decision(topic, closed) for topic in self._rules}
        findings: list[Finding] = []
        decisions: dict[str, Decision] = {}
        for topic, rule in self._rules.items():
            decisions[topic] = self._decide(topic, rule.needs, picture, picture, findings)
        return self._iron_gated(findings, picture), decisions

    def order_view(
        self, picture: PatientPicture, drafts: Sequence[MedicationFact], hook: OrderHook
    ) -> list[Finding]:
        """Findings about draft orders (the ones the clinician is acting on), never about
        medications already on the record; none unless the patient has active RLS.

        The medication rules run over a picture whose medications are the drafts; their
        findings take the draft variants of the same cards. Every draft card is a warning,
        except a dose above the renal limit at signing, which is critical (docs/card-topics.md).
        """
        return self.decide_order_view(picture, drafts, hook)[0]

    def decide_order_view(
        self, picture: PatientPicture, drafts: Sequence[MedicationFact], hook: OrderHook
    ) -> tuple[list[Finding], dict[str, Decision]]:
        """order_view's findings, and each order topic's decision (see decide_patient_view)."""
        closed = gate_reason(picture)
        if closed is None and not drafts:
            closed = Reason("no-drafts", "no draft medication order to look at")
        if closed is not None:
            return [], {topic: Decision(topic, closed) for topic in ORDER_TOPICS}
        ordering = replace(picture, medications=tuple(drafts))
        found: list[Finding] = []
        decisions: dict[str, Decision] = {}
        for topic in ORDER_TOPICS:
            needs = self._rules[topic].needs - {"medications"}
            decisions[topic] = self._decide(topic, needs, picture, ordering, found)
        findings: list[Finding] = []
        for finding in found:
            variant = "draft" if finding.variant == "default" else f"draft-{finding.variant}"
            critical = hook == "order-sign" and finding.variant in CRITICAL_AT_SIGNING
            findings.append(
                replace(finding, variant=variant, indicator="critical" if critical else "warning")
            )
        return self._iron_gated(findings, picture), decisions

    def _decide(
        self,
        topic: str,
        needs: frozenset[str],
        picture: PatientPicture,
        looked_at: PatientPicture,
        findings: list[Finding],
    ) -> Decision:
        """Run one topic's rule over `looked_at` unless data it needs was not read; its
        findings go to `findings`, its decision is returned."""
        missing = needs & picture.unavailable
        if missing:
            return Decision(topic, unread_reason(missing, "rule not run"))
        result = self._rules[topic].check(looked_at, self._params[topic])
        if result:
            findings.extend(result)
            return Decision(topic)
        if isinstance(result, NoCard):
            return Decision(topic, result.reason)
        return Decision(topic, UNEXPLAINED)  # a rule path without its NoCard: a defect

    def _iron_gated(self, findings: list[Finding], picture: PatientPicture) -> list[Finding]:
        """Every finding with its iron suggestions through the iron safety gate.

        A withheld suggestion is dropped, or replaced by what its note names (the iron panel
        in place of IV iron without a TSAT, the repeat ferritin when iron is on record, the
        dose by weight in place of an adult dose for a child), which passes the gate too; the
        card keeps firing and its notes say what was withheld and why.
        """
        params = self._params[iron.BELOW_TARGET]
        facts: IronFacts | None = None
        gated: list[Finding] = []
        for finding in findings:
            products = self._iron.products.get(finding.topic, {})
            keys = finding.suggestions
            if keys is None:
                keys = self._iron.defaults.get(finding.topic, {}).get(finding.variant, ())
            if not products or not set(keys) & set(products):
                gated.append(finding)
                continue
            facts = facts or iron.iron_facts(picture, params)
            gated.append(self._gate(finding, keys, facts, params))
        return gated

    def _gate(
        self, finding: Finding, keys: tuple[str, ...], facts: IronFacts, limits: Params
    ) -> Finding:
        products = self._iron.products[finding.topic]
        offered = self._iron.offered.get(finding.topic, frozenset())
        kept: list[str] = []
        notes: list[CardNote] = list(finding.card_notes)
        seen: set[str] = set()
        pending = list(keys)
        while pending:
            key = pending.pop(0)
            if key in seen:
                continue
            seen.add(key)
            result = gate({key: products[key]}, facts, limits) if key in products else None
            if result is None or key in result.allowed:
                kept.append(key)
                continue
            note = result.withheld[key]
            if note not in notes:
                notes.append(note)
            instead = self._iron.instead.get(note.key)
            if instead in offered:
                pending.insert(0, instead)  # gated in its turn when it gives iron
        return replace(finding, suggestions=tuple(kept), card_notes=tuple(notes))
