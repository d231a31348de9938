"""Alert-fatigue suppression end to end over HTTP: a topic overridden for a patient as handled
or declined is not shown again to that patient for the configured period; nothing else is
hidden (other topics, other patients, other reasons, order hooks)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import g

from tests import builders as b
from tests.feedback.conftest import (
    ORDER_SIGN,
    PATIENT_VIEW,
    accepted,
    cards_by_topic,
    feedback_url,
    flush,
    order_sign_body,
    overridden,
    patient_view_body,
    post_json,
)

ANTIHISTAMINE = "sedating-antihistamine"
IRON = "iron-below-target"
BOTH = {IRON, ANTIHISTAMINE}


def patient_view(client, patient_id: str = b.PATIENT_ID) -> dict[str, dict]:
    return cards_by_topic(post_json(client, PATIENT_VIEW, patient_view_body(patient_id)))


def override(
    app, client, card: dict, code: str | None, service: str = "rls-secondary-causes", **kwargs
) -> None:
    flush(app)  # the card is in the index before its feedback arrives, as with a real EHR
    item = overridden(card["uuid"], code, **kwargs)
    response = post_json(client, feedback_url(service), {"feedback": [item]})
    assert response.status_code == 200
    assert response.get_json()["received"] == 1


@pytest.mark.parametrize("reason", ["patient-declined", "already-addressed"])
def test_an_overridden_topic_is_hidden_and_the_others_still_fire(app, client, reason):
    cards = patient_view(client)
    assert set(cards) == BOTH
    override(app, client, cards[ANTIHISTAMINE], reason)
    again = patient_view(client)
    assert set(again) == {IRON}
    assert again[IRON]["uuid"] != cards[IRON]["uuid"]
    flush(app)
    assert app.extensions["rls_cds"].feedback.suppression_failures == 0


@pytest.mark.parametrize(
    "reason", ["not-clinically-relevant", "benefit-outweighs-risk", "tolerated-before", None]
)
def test_other_reasons_do_not_suppress(app, client, reason):
    cards = patient_view(client)
    override(app, client, cards[ANTIHISTAMINE], reason)
    assert set(patient_view(client)) == BOTH


def test_a_suppressing_code_from_another_system_does_not_suppress(app, client):
    cards = patient_view(client)
    system = "http://example.org/cds-services/fhir/CodeSystem/override-reasons"
    override(app, client, cards[ANTIHISTAMINE], "patient-declined", system=system)
    assert set(patient_view(client)) == BOTH


def test_an_accepted_card_is_not_suppressed(app, client):
    cards = patient_view(client)
    flush(app)
    body = {"feedback": [accepted(cards[ANTIHISTAMINE])]}
    assert post_json(client, feedback_url(), body).status_code == 200
    assert set(patient_view(client)) == BOTH


def test_suppression_ends_after_the_configured_days(app, client, clock):
    cards = patient_view(client)
    override(app, client, cards[ANTIHISTAMINE], "patient-declined")
    clock.advance(days=89, hours=23)
    assert ANTIHISTAMINE not in patient_view(client)
    clock.advance(hours=2)  # 90 days and an hour after the override
    assert ANTIHISTAMINE in patient_view(client)


def test_suppression_days_is_configurable(make_app, clock):
    app = make_app(suppression_days=7)
    client = app.test_client()
    cards = patient_view(client)
    override(app, client, cards[ANTIHISTAMINE], "already-addressed")
    clock.advance(days=6)
    assert set(patient_view(client)) == {IRON}
    clock.advance(days=2)
    assert set(patient_view(client)) == BOTH


def test_suppression_days_zero_switches_it_off(make_app):
    app = make_app(suppression_days=0)
    client = app.test_client()
    cards = patient_view(client)
    override(app, client, cards[ANTIHISTAMINE], "patient-declined")
    assert set(patient_view(client)) == BOTH


def test_suppressing_reasons_are_configurable(make_app):
    app = make_app(suppressing_reasons="benefit-outweighs-risk")
    client = app.test_client()
    cards = patient_view(client)
    override(app, client, cards[ANTIHISTAMINE], "patient-declined")
    assert set(patient_view(client)) == BOTH
    override(app, client, cards[ANTIHISTAMINE], "benefit-outweighs-risk")
    assert set(patient_view(client)) == {IRON}


def test_the_window_counts_from_the_outcome_time(app, client, clock):
    """Feedback sent today about an override 100 days ago suppresses nothing."""
    clock.now = b.NOW - timedelta(days=100)
    cards = patient_view(client)
    when = clock.now + timedelta(minutes=1)
    clock.now = b.NOW
    override(app, client, cards[ANTIHISTAMINE], "patient-declined", when=when)
    assert set(patient_view(client)) == BOTH


def test_another_patient_is_unaffected(app, client):
    cards = patient_view(client, "patient-a")
    override(app, client, cards[ANTIHISTAMINE], "patient-declined")
    assert set(patient_view(client, "patient-b")) == BOTH
    assert set(patient_view(client, "patient-a")) == {IRON}


def test_both_topics_can_be_suppressed(app, client):
    cards = patient_view(client)
    override(app, client, cards[ANTIHISTAMINE], "patient-declined")
    override(app, client, cards[IRON], "already-addressed")
    assert patient_view(client) == {}


def test_order_hooks_are_not_suppressed(app, client):
    cards = patient_view(client)
    override(app, client, cards[ANTIHISTAMINE], "patient-declined")
    assert set(patient_view(client)) == {IRON}
    order = cards_by_topic(post_json(client, ORDER_SIGN, order_sign_body()))
    assert set(order) == {ANTIHISTAMINE}


def test_an_order_card_overridden_as_declined_does_not_hide_the_patient_view_card(app, client):
    """README: suppression follows an override of a *patient-view* card, with a code from that
    card's overrideReasons. An order-sign card does not offer 'patient-declined' (its reasons
    are benefit-outweighs-risk, tolerated-before, short-course), and a new prescription is
    a new decision: its override must not hide the medication-review card."""
    (card,) = cards_by_topic(post_json(client, ORDER_SIGN, order_sign_body())).values()
    assert "patient-declined" not in [r["code"] for r in card["overrideReasons"]]
    override(app, client, card, "patient-declined", service="rls-order-sign")
    assert ANTIHISTAMINE in patient_view(client)


def test_suppression_survives_a_restart(make_app):
    first = make_app()
    client = first.test_client()
    cards = patient_view(client)
    override(first, client, cards[ANTIHISTAMINE], "patient-declined")
    restarted = make_app()
    assert set(patient_view(restarted.test_client())) == {IRON}


def test_a_suppressed_topic_is_explained_as_overridden(app, client):
    """Issue 19: the hidden card's topic says it was suppressed by feedback (not "no card")."""
    cards = patient_view(client)
    override(app, client, cards[ANTIHISTAMINE], "already-addressed")
    with client:
        post_json(client, PATIENT_VIEW, patient_view_body(b.PATIENT_ID))
        decisions = {d.topic: d.reason for d in g.hook_outcome.decisions}
    assert decisions[IRON] is None
    reason = decisions[ANTIHISTAMINE]
    assert reason is not None and reason.code == "suppressed"
    assert reason.text.startswith("suppressed: a clinician overrode this card")
