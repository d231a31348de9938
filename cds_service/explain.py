"""Why each topic of a hook fired or not, in plain words: the engine's own decisions
(cds_service.clinical.engine), completed with what only the caller knows (why data was not
read, which cards feedback suppressed), rendered for a person, the demo page and the log.

Nothing here decides a topic: a reason is the rule's NoCard, the engine's gate or the data
it could not read. The reasons' text holds patient data (values, dates), so the log gets the
reason codes only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from cds_service.clinical.findings import Decision, Reason
from cds_service.fhir.bulkhead import NoSlot
from cds_service.fhir.errors import FhirError, FhirMalformed, FhirRefused, FhirUnreachable

SUPPRESSED = Reason(
    "suppressed",
    "suppressed: a clinician overrode this card for this patient recently (feedback)",
)
#: Why a kind of data was not read when no fetch failed: the EHR did not prefetch it and
#: named no FHIR server to fetch it from.
NOT_PREFETCHED = "not in the prefetch, and no FHIR server to fetch it from"
#: Why a kind of data was not read when it was there: the call's CPU budget ran out first.
BUDGET_SPENT = "the CPU budget for reading one call ran out (RLS_CDS_DOMAIN_CPU_BUDGET_S)"


def fetch_cause(error: FhirError) -> str:
    """A failed fetch in plain words, e.g. "the FHIR server did not answer in time"."""
    text = str(error)
    if isinstance(error, FhirRefused):
        return f"the FHIR server refused the request ({text})"
    if isinstance(error, FhirUnreachable):
        return "the FHIR server could not be reached"
    if isinstance(error, FhirMalformed):
        return "the FHIR server's answer was not usable FHIR JSON"
    if isinstance(error, NoSlot):
        return "no FHIR fetch slot came free in time (the server's or client's share was in use)"
    if "timed out" in text or "deadline" in text:
        return "the FHIR server did not answer in time"
    return f"the FHIR server answered {text}" if text.startswith("HTTP") else text


def explain(
    decisions: Iterable[Decision],
    suppressed: Iterable[str] = (),
    causes: Mapping[str, str] | None = None,
) -> tuple[Decision, ...]:
    """The decisions with feedback's suppression applied and, for data not read, why
    (`causes`: kind of data -> the words, from fetch_cause or NOT_PREFETCHED)."""
    hidden = set(suppressed)
    known = causes or {}
    explained: list[Decision] = []
    for decision in decisions:
        reason = decision.reason
        if reason is None and decision.topic in hidden:
            reason = SUPPRESSED
        elif reason is not None and reason.unread:
            why = "; ".join(
                dict.fromkeys(known[kind] for kind in sorted(reason.unread) if kind in known)
            )
            if why:
                kinds, _, consequence = reason.text.partition(" not read: ")
                reason = replace(reason, text=f"{kinds} not read ({why}): {consequence}")
        explained.append(
            decision if reason is decision.reason else replace(decision, reason=reason)
        )
    return tuple(explained)


def with_overrides(
    decisions: Iterable[Decision], overrides: Mapping[str, str]
) -> tuple[Decision, ...]:
    """The suppressed topics named with the override that hid them, where the caller could
    ask the feedback store (`overrides`: topic -> e.g. "overridden as Already assessed on
    2026-11-30, until 2027-02-28")."""
    return tuple(
        replace(d, reason=replace(d.reason, text=f"suppressed: {overrides[d.topic]}"))
        if d.reason is not None and d.reason.code == SUPPRESSED.code and d.topic in overrides
        else d
        for d in decisions
    )


def render_text(decisions: Iterable[Decision]) -> str:
    """One line per topic: `fired` or `no card` and the reason, for a terminal."""
    lines = ["explanation (each topic of the hook):"]
    for decision in decisions:
        if decision.reason is None:
            lines.append(f"  fired    {decision.topic}")
        else:
            lines.append(f"  no card  {decision.topic}: {decision.reason.text}")
    return "\n".join(lines)


def as_data(decisions: Iterable[Decision]) -> list[dict[str, Any]]:
    """The explanation as JSON-ready data (the demo page's explain view)."""
    return [
        {
            "topic": d.topic,
            "fired": d.fired,
            "code": d.reason.code if d.reason else None,
            "reason": d.reason.text if d.reason else None,
        }
        for d in decisions
    ]


def log_codes(decisions: Iterable[Decision]) -> dict[str, str]:
    """topic -> reason code (`fired` when it fired): what the debug log may carry, no
    values, no dates."""
    return {d.topic: d.reason.code if d.reason else "fired" for d in decisions}
