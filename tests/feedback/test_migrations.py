"""Migration 0002 (issue 16, tenant binding) on SQLite and PostgreSQL: a store written by the
previous version is carried forward, row for row, and its rows can no longer hide a card.
Migration 0003 (issue 20) carries stored overrides into the suppression table: the same
topics stay hidden, for as long as before.

Before 0002 the pseudonym was HMAC(secret, patient id) and cards recorded no client: such
rows keep issuer and tenant NULL. They still count in the report; no client can attach
new feedback to them; and they suppress nothing, since lookups are keyed by issuer, tenant,
fhirServer and id now.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from cds_service.auth.model import PatientScope
from cds_service.feedback.store import MIGRATIONS
from cds_service.knowledge import OVERRIDE_REASON_SYSTEM
from tests import builders as b
from tests.feedback.conftest import (
    PATIENT_VIEW,
    SECRET,
    Backend,
    as_utc,
    cards_by_topic,
    feedback_url,
    iso,
    overridden,
    patient_view_body,
    post_json,
    pseudonym,
)

ANTIHISTAMINE = "sedating-antihistamine"
IRON = "iron-below-target"
LEGACY_CARD = "4b1c9c1e-0000-4000-8000-00000000c0de"


def alembic(backend: Backend, revision: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = backend.engine()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)
    engine.dispose()


def legacy_store(backend: Backend) -> None:
    """The store as the previous version left it: a card overridden as already addressed
    for patient p1 yesterday, keyed by the old pseudonym (the id alone)."""
    alembic(backend, "0001")
    old_key = hmac.new(SECRET.encode(), b.PATIENT_ID.encode(), hashlib.sha256).hexdigest()
    yesterday = b.NOW - timedelta(days=1)
    with backend._sql_engine().begin() as connection:
        connection.execute(
            text(
                "INSERT INTO issued_card (card_uuid, service_id, topic, hook_instance, "
                "patient_key, issued_at) VALUES (:c, 'rls-secondary-causes', :t, 'h', :k, :at)"
            ),
            {"c": LEGACY_CARD, "t": ANTIHISTAMINE, "k": old_key, "at": yesterday},
        )
        connection.execute(
            text("INSERT INTO issued_suggestion (suggestion_uuid, card_uuid) VALUES ('s', :c)"),
            {"c": LEGACY_CARD},
        )
        connection.execute(
            text(
                "INSERT INTO feedback (item_key, card_uuid, service_id, outcome, "
                "accepted_suggestions, reason_system, reason_code, user_comment, outcome_at, "
                "received_at, client) VALUES ('k1', :c, 'rls-secondary-causes', 'overridden', "
                ":none, :system, 'already-addressed', NULL, :at, :at, 'https://b.example')"
            ),
            {
                "c": LEGACY_CARD,
                "none": json.dumps([]),
                "system": OVERRIDE_REASON_SYSTEM,
                "at": yesterday,
            },
        )


def columns(backend: Backend, table: str) -> set[str]:
    return {c["name"] for c in inspect(backend._sql_engine()).get_columns(table)}


def test_rows_are_carried_forward_and_bound_to_no_client(store_backend, make_app):
    legacy_store(store_backend)
    app = make_app()  # migrates at start-up
    assert store_backend.rows("alembic_version") == [{"version_num": "0003"}]
    (card,) = store_backend.rows("issued_card")
    assert card["card_uuid"] == LEGACY_CARD and card["topic"] == ANTIHISTAMINE
    assert (card["issuer"], card["tenant"]) == (None, None)
    (item,) = store_backend.rows("feedback")
    assert (item["client"], item["tenant"], item["reason_code"]) == (
        "https://b.example",
        None,
        "already-addressed",
    )
    assert store_backend.count("issued_suggestion") == 1
    topics, unknown = app.extensions["rls_cds"].feedback.store.report(None)
    assert [(t.topic, t.issued, t.overridden) for t in topics] == [(ANTIHISTAMINE, 1, 1)]
    assert unknown == 0


def test_a_legacy_override_hides_nothing_and_takes_no_new_feedback(store_backend, make_app):
    legacy_store(store_backend)
    client = make_app().test_client()
    cards = cards_by_topic(post_json(client, PATIENT_VIEW, patient_view_body()))
    assert ANTIHISTAMINE in cards  # the legacy override (of the id alone) hides nothing
    item = overridden(LEGACY_CARD, "patient-declined", when=b.NOW)
    response = post_json(client, feedback_url(), {"feedback": [item]})
    assert response.status_code == 404
    assert store_backend.count("feedback") == 1


def test_new_rows_record_their_client(store_backend, make_app):
    legacy_store(store_backend)
    app = make_app()
    client = app.test_client()
    cards = cards_by_topic(post_json(client, PATIENT_VIEW, patient_view_body()))
    app.extensions["rls_cds"].feedback.recorder.flush()
    item = {"card": cards[ANTIHISTAMINE]["uuid"], "outcome": "overridden",
            "outcomeTimestamp": iso(b.NOW)}  # fmt: skip
    assert post_json(client, feedback_url(), {"feedback": [item]}).status_code == 200
    new = [r for r in store_backend.rows("issued_card") if r["card_uuid"] != LEGACY_CARD]
    assert {(r["issuer"], r["tenant"]) for r in new} == {("demo", "")}
    assert {(r["client"], r["tenant"]) for r in store_backend.rows("feedback")} == {
        ("https://b.example", None),
        ("demo", ""),
    }


def test_downgrade_to_0001_keeps_the_rows(store_backend, make_app):
    legacy_store(store_backend)
    app = make_app()
    app.extensions["rls_cds"].database.dispose()
    alembic(store_backend, "0001", down=True)
    assert store_backend.rows("alembic_version") == [{"version_num": "0001"}]
    assert "issuer" not in columns(store_backend, "issued_card")
    assert "tenant" not in columns(store_backend, "feedback")
    assert store_backend.count("issued_card") == 1 and store_backend.count("feedback") == 1
    alembic(store_backend, "head")
    assert store_backend.rows("alembic_version") == [{"version_num": "0003"}]


# --- migration 0003 (issue 20): the suppression table ---------------------------------------


def store_at_0002(backend: Backend) -> None:
    """A store as 0002 left it, for patient p1 of the demo client: the antihistamine card
    overridden twice as patient-declined (the later three days ago), the iron card overridden
    with a reason that suppresses nothing, and an old override beyond the window."""
    alembic(backend, "0002")
    key = pseudonym(b.PATIENT_ID)
    cards = [("c-anti", ANTIHISTAMINE), ("c-iron", IRON), ("c-old", "kidney-function-low")]
    feedback = [
        ("c-anti", "patient-declined", b.NOW - timedelta(days=10)),
        ("c-anti", "patient-declined", b.NOW - timedelta(days=3)),
        ("c-iron", "not-clinically-relevant", b.NOW - timedelta(days=1)),
        ("c-old", "already-addressed", b.NOW - timedelta(days=91)),
    ]
    with backend._sql_engine().begin() as connection:
        for card, topic in cards:
            connection.execute(
                text(
                    "INSERT INTO issued_card (card_uuid, service_id, topic, hook_instance, "
                    "patient_key, issued_at, issuer, tenant) "
                    "VALUES (:c, 'rls-secondary-causes', :t, 'h', :k, :at, 'demo', '')"
                ),
                {"c": card, "t": topic, "k": key, "at": b.NOW - timedelta(days=100)},
            )
        for n, (card, code, when) in enumerate(feedback):
            connection.execute(
                text(
                    "INSERT INTO feedback (item_key, card_uuid, service_id, outcome, "
                    "accepted_suggestions, reason_system, reason_code, user_comment, "
                    "outcome_at, received_at, client, tenant) VALUES (:key, :c, "
                    "'rls-secondary-causes', 'overridden', '[]', :system, :code, NULL, :at, "
                    ":at, 'demo', '')"
                ),
                {"key": f"k{n}", "c": card, "system": OVERRIDE_REASON_SYSTEM, "code": code,
                 "at": when},
            )  # fmt: skip


def test_0003_carries_stored_feedback_over_and_suppresses_the_same(store_backend, make_app):
    store_at_0002(store_backend)
    app = make_app()  # migrates to 0003 at start-up
    assert store_backend.rows("alembic_version") == [{"version_num": "0003"}]
    rows = {(r["topic"], r["reason_code"]): as_utc(r["overridden_at"])
            for r in store_backend.rows("suppression")}  # fmt: skip
    assert rows == {
        (ANTIHISTAMINE, "patient-declined"): b.NOW - timedelta(days=3),  # the latest
        (IRON, "not-clinically-relevant"): b.NOW - timedelta(days=1),
        ("kidney-function-low", "already-addressed"): b.NOW - timedelta(days=91),
    }
    cards = cards_by_topic(post_json(app.test_client(), PATIENT_VIEW, patient_view_body()))
    assert set(cards) == {IRON}  # hidden as before the upgrade; the iron card still shows
    feedback = app.extensions["rls_cds"].feedback
    scope = PatientScope("demo", None, None, b.PATIENT_ID)
    (found,) = feedback.suppressions(scope, [ANTIHISTAMINE, IRON], b.NOW)
    assert (found.topic, found.reason_code) == (ANTIHISTAMINE, "patient-declined")
    assert found.since == b.NOW - timedelta(days=3)
    assert feedback.forget(scope) == 4
    assert store_backend.count("suppression") == 0
    again = post_json(app.test_client(), PATIENT_VIEW, patient_view_body())
    assert set(cards_by_topic(again)) == {IRON, ANTIHISTAMINE}
