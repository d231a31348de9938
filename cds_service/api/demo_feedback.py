"""The demo page's view of feedback: why cards were hidden, and a reset (demo mode only).

After a clinician overrides a card as handled or declined, the topic is not shown to that
patient for a while (``FeedbackService.suppressed``). An EHR gets nothing on the wire about
it; the demo page, which calls the hook in-process, gets the call's Outcome (the hook
view's ``g.hook_outcome``) and tells which topics were hidden, by which override and until
when. ``POST /demo/forget`` deletes the feedback the demo client sent about the chosen
patient, so that the cards show again; create_app registers this blueprint in demo mode
only (404 to any method otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, redirect, request, url_for

from cds_service.api import runtime
from cds_service.api.security import authenticated_client
from cds_service.auth.model import PatientScope
from cds_service.errors import RequestInvalid, StoreUnavailable
from cds_service.evaluation import Outcome
from cds_service.hooks.wire import FHIR_ID
from cds_service.knowledge import CardDefinition, CodingDef

bp = Blueprint("demo_feedback", __name__)
#: The page's query parameter that reports a reset.
FORGOTTEN = "forgotten"


@dataclass(frozen=True)
class HiddenCard:
    """A card the answer left out because of feedback, as the page's notice words it."""

    topic: str
    title: str
    reason: str
    since: str
    until: str


@dataclass(frozen=True)
class Hidden:
    """The hidden cards of one answer, or why the store could not say."""

    cards: tuple[HiddenCard, ...] = ()
    error: str | None = None


@bp.app_context_processor
def _forgotten() -> dict[str, Any]:
    """The demo template's `forgotten`: how many items the reset just deleted (its redirect
    says so in the query), or None."""
    value = request.args.get(FORGOTTEN, "")
    return {"forgotten": int(value) if value.isdigit() and len(value) < 10 else None}


def hidden_cards(outcome: Outcome | None) -> Hidden:
    """The topics `outcome` suppressed, each with the override that hid it."""
    if outcome is None or not outcome.suppressed or outcome.patient is None:
        return Hidden()
    rt = runtime()
    now = outcome.answered_at or rt.evaluator.now()
    try:
        found = rt.feedback.suppressions(outcome.patient, outcome.suppressed, now)
    except StoreUnavailable as exc:
        return Hidden(error=str(exc))
    cards = []
    for item in found:
        card = rt.knowledge.cards.get(item.topic)
        reasons = {r.code: r.display for r in _override_reasons(card)}
        cards.append(
            HiddenCard(
                topic=item.topic,
                title=card.display if card else item.topic,
                reason=reasons.get(item.reason_code, item.reason_code),
                since=item.since.date().isoformat(),
                until=item.until.date().isoformat(),
            )
        )
    return Hidden(tuple(cards))


def _override_reasons(card: CardDefinition | None) -> list[CodingDef]:
    """The card's override reasons and its variants' (to name the code a clinician chose)."""
    if card is None:
        return []
    variants = [r for v in card.variants.values() for r in v.override_reasons or ()]
    return [*variants, *card.override_reasons]


@bp.post("/demo/forget")
def forget():
    """Delete the demo client's feedback about the patient the form names (``patient_id``),
    then show the page again for the same choice: a 307 re-posts the form, so the hook is
    called again and the cards the feedback hid are back."""
    patient_id = request.form.get("patient_id", "")
    if not re.fullmatch(FHIR_ID, patient_id):
        raise RequestInvalid(
            "patient_id must be a FHIR id", [{"loc": "patient_id", "msg": "not a FHIR id"}]
        )
    client = authenticated_client()
    deleted = runtime().feedback.forget(
        PatientScope(client.issuer, client.tenant, None, patient_id)
    )
    return redirect(url_for("demo.page", **{FORGOTTEN: deleted}), code=307)
