"""What the demo page reads from and does to the store, on SQLite and PostgreSQL: the override
behind each hidden topic (the latest one, with its reason and the end of its window), and the
reset that deletes one patient's feedback of one client and nothing else."""

from __future__ import annotations

from datetime import timedelta

from cds_service.auth.model import Client, PatientScope
from cds_service.feedback.store import IssuedCards
from cds_service.hooks.wire import FeedbackItem
from tests import builders as b
from tests.feedback.conftest import overridden
from tests.feedback.test_suppression import ANTIHISTAMINE, IRON, override, patient_view

DEMO = PatientScope("demo", None, None, b.PATIENT_ID)


def test_suppressions_name_the_latest_override_of_each_hidden_topic(app, client, clock):
    cards = patient_view(client)
    override(app, client, cards[ANTIHISTAMINE], "patient-declined", when=b.NOW)
    clock.advance(days=3)
    later = b.NOW + timedelta(days=2)
    override(app, client, cards[ANTIHISTAMINE], "already-addressed", when=later)
    override(app, client, cards[IRON], "not-clinically-relevant")  # hides nothing
    feedback = app.extensions["rls_cds"].feedback
    (found,) = feedback.suppressions(DEMO, [ANTIHISTAMINE, IRON], clock())
    assert (found.topic, found.reason_code) == (ANTIHISTAMINE, "already-addressed")
    assert found.since == later and found.until == later + timedelta(days=90)
    other = PatientScope("demo", None, None, "someone-else")
    assert feedback.suppressions(other, [ANTIHISTAMINE], clock()) == []


def test_forget_deletes_this_clients_feedback_about_this_patient_only(app, client):
    mine = patient_view(client)
    theirs = patient_view(client, "patient-b")
    override(app, client, mine[ANTIHISTAMINE], "patient-declined")
    override(app, client, theirs[ANTIHISTAMINE], "patient-declined")
    feedback = app.extensions["rls_cds"].feedback
    store = feedback.store
    # The same patient id at another client: its own card and override.
    tenant = Client(issuer="https://ehr.example.org", tenant="clinic-a")
    scope = PatientScope(tenant.issuer, tenant.tenant, None, b.PATIENT_ID)
    card = {"uuid": "tenant-card", "source": {"topic": {"code": ANTIHISTAMINE}}}
    key = store.patient_key(scope)
    store.record(
        [IssuedCards("rls-secondary-causes", "h", tenant.issuer, tenant.tenant, key, b.NOW, [card])]
    )
    item = FeedbackItem.model_validate(overridden("tenant-card", "patient-declined"))
    feedback.store_feedback([item], "rls-secondary-causes", tenant, b.NOW)

    assert feedback.forget(DEMO) == 1
    assert feedback.forget(DEMO) == 0
    assert set(patient_view(client)) == {IRON, ANTIHISTAMINE}
    assert set(patient_view(client, "patient-b")) == {IRON}
    assert feedback.suppressed(scope, [ANTIHISTAMINE], b.NOW) == {ANTIHISTAMINE}
    topics, _ = store.report(None)
    assert next(t for t in topics if t.topic == ANTIHISTAMINE).issued >= 3  # cards stay
