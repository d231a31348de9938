"""The store: migrations (at start-up, `rls-cds db upgrade`, several workers at once), the
issued-card index under a keyed pseudonym, and hooks that answer when the store is down."""

from __future__ import annotations

import threading

import pytest

from cds_service import cli
from cds_service.app import create_app
from cds_service.auth.model import PatientScope
from cds_service.feedback import SecretMissing
from cds_service.settings import Settings
from tests import builders as b
from tests.feedback.conftest import (
    ORDER_SIGN,
    PATIENT_VIEW,
    SECRET,
    TABLES,
    accepted,
    as_utc,
    cards_by_topic,
    feedback_url,
    flush,
    order_sign_body,
    overridden,
    patient_view_body,
    post_json,
    pseudonym,
)

# --- migrations ---------------------------------------------------------------------------


def test_start_up_migrates_an_empty_database(store_backend, make_app):
    assert not store_backend.tables() & set(TABLES)
    make_app()
    assert store_backend.tables() >= {*TABLES, "alembic_version"}
    assert store_backend.rows("alembic_version") == [{"version_num": "0003"}]
    for table in TABLES:
        assert store_backend.count(table) == 0


def test_start_up_without_migrations_leaves_the_database_alone(store_backend, make_app):
    make_app(migrate_on_start=False)
    assert not store_backend.tables() & {*TABLES, "alembic_version"}


def test_db_upgrade_command_is_idempotent(store_backend, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DATABASE_URL", store_backend.url)
    monkeypatch.setenv("RLS_CDS_DATA_DIR", str(tmp_path))
    assert cli.main(["db", "upgrade"]) == 0
    assert "migrated" in capsys.readouterr().out
    assert store_backend.tables() >= {*TABLES, "alembic_version"}
    assert cli.main(["db", "upgrade"]) == 0
    assert store_backend.rows("alembic_version") == [{"version_num": "0003"}]
    # and an app starting on the migrated store migrates nothing and works
    app = create_app(store_backend.settings(), clock=lambda: b.NOW)
    try:
        response = post_json(
            app.test_client(), PATIENT_VIEW, patient_view_body(antihistamine=False)
        )
        assert list(cards_by_topic(response)) == ["iron-below-target"]
        flush(app)
        assert store_backend.count("issued_card") == 1
        assert store_backend.rows("alembic_version") == [{"version_num": "0003"}]
    finally:
        app.extensions["rls_cds"].database.dispose()


def test_db_upgrade_on_the_default_sqlite_file(monkeypatch, capsys, tmp_path):
    """No DATABASE_URL: the SQLite file in RLS_CDS_DATA_DIR."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("RLS_CDS_DATABASE_URL", raising=False)
    monkeypatch.setenv("RLS_CDS_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["db", "upgrade"]) == 0
    assert cli.main(["db", "upgrade"]) == 0
    assert (tmp_path / "data" / "rls-cds.sqlite3").is_file()


def test_db_upgrade_reports_an_unreachable_database(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    monkeypatch.setenv("RLS_CDS_DATA_DIR", str(tmp_path))
    assert cli.main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rls-cds: the database could not be migrated")
    assert err[-1] == "\n" and err.count("\n") == 1


@pytest.mark.postgres
def test_workers_starting_at_once_on_an_empty_postgresql_database(pg_backend, clock):
    store_backend = pg_backend
    apps: list = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            apps.append(create_app(store_backend.settings(), clock=clock))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert not errors
        assert len(apps) == 4
        assert store_backend.rows("alembic_version") == [{"version_num": "0003"}]
        for app in apps:  # every worker's store is usable: none gave up migrating
            assert app.extensions["rls_cds"].feedback.store._migrated
            response = post_json(app.test_client(), PATIENT_VIEW, patient_view_body())
            assert len(cards_by_topic(response)) == 2
            flush(app)
            assert app.extensions["rls_cds"].feedback.recorder.failed == 0
        assert store_backend.count("issued_card") == 8
    finally:
        for app in apps:
            app.extensions["rls_cds"].database.dispose()


# --- the issued-card index ----------------------------------------------------------------

PATIENT = "Zq7-patient.0042"


def test_issued_cards_and_suggestions_are_recorded(store_backend, app, client):
    body = patient_view_body(PATIENT)
    cards = cards_by_topic(post_json(client, PATIENT_VIEW, body))
    assert set(cards) == {"iron-below-target", "sedating-antihistamine"}
    flush(app)
    issued = {row["card_uuid"]: row for row in store_backend.rows("issued_card")}
    assert set(issued) == {card["uuid"] for card in cards.values()}
    for topic, card in cards.items():
        row = issued[card["uuid"]]
        assert row["topic"] == topic
        assert row["service_id"] == "rls-secondary-causes"
        assert row["hook_instance"] == body["hookInstance"]
        assert row["patient_key"] == pseudonym(PATIENT)
        assert as_utc(row["issued_at"]) == b.NOW
    suggestions = {
        r["suggestion_uuid"]: r["card_uuid"] for r in store_backend.rows("issued_suggestion")
    }
    assert suggestions == {
        s["uuid"]: card["uuid"] for card in cards.values() for s in card["suggestions"]
    }
    assert app.extensions["rls_cds"].feedback.recorder.recorded == 1


def test_order_hook_cards_are_recorded_too(store_backend, app, client):
    cards = cards_by_topic(post_json(client, ORDER_SIGN, order_sign_body(PATIENT)))
    assert set(cards) == {"sedating-antihistamine"}
    flush(app)
    (row,) = store_backend.rows("issued_card")
    assert row["service_id"] == "rls-order-sign"
    assert row["patient_key"] == pseudonym(PATIENT)


def test_an_answer_without_cards_records_nothing(store_backend, app, client):
    body = b.hook_request(b.prefetch())  # no RLS: no cards
    assert post_json(client, PATIENT_VIEW, body).get_json() == {"cards": []}
    flush(app)
    assert store_backend.count("issued_card") == 0


def test_the_patient_id_is_stored_nowhere(store_backend, app, client):
    """Every column of every row of every table: only the HMAC pseudonym, never the id."""
    cards = cards_by_topic(post_json(client, PATIENT_VIEW, patient_view_body(PATIENT)))
    post_json(client, ORDER_SIGN, order_sign_body(PATIENT))
    flush(app)
    items = [
        accepted(cards["iron-below-target"]),
        overridden(cards["sedating-antihistamine"]["uuid"], "patient-declined"),
    ]
    items[1]["overrideReason"]["userComment"] = "discussed today"
    assert post_json(client, feedback_url(), {"feedback": items}).status_code == 200
    assert store_backend.count("issued_card") == 3
    seen = 0
    for table in store_backend.tables():
        for row in store_backend.rows(table):
            for value in row.values():
                seen += 1
                assert PATIENT.lower() not in str(value).lower(), (table, row)
    assert seen > 20
    keys = {row["patient_key"] for row in store_backend.rows("issued_card")}
    assert keys == {pseudonym(PATIENT)}


def test_the_pseudonym_depends_on_the_secret(store_backend, make_app):
    first = make_app()
    second = make_app(patient_key_secret="another-secret")
    for app in (first, second):
        post_json(app.test_client(), PATIENT_VIEW, patient_view_body(PATIENT))
        flush(app)
    keys = {row["patient_key"] for row in store_backend.rows("issued_card")}
    assert keys == {pseudonym(PATIENT, SECRET), pseudonym(PATIENT, "another-secret")}


@pytest.mark.postgres
def test_postgresql_requires_the_pseudonym_secret(pg_backend):
    settings = pg_backend.settings(patient_key_secret=None)
    with pytest.raises(SecretMissing):
        create_app(settings)


def test_sqlite_keeps_a_secret_in_the_data_dir(tmp_path):
    settings = Settings(demo=True, data_dir=tmp_path, log_level="WARNING")
    app = create_app(settings, clock=lambda: b.NOW)
    post_json(app.test_client(), PATIENT_VIEW, patient_view_body(PATIENT))
    flush(app)
    secret = (tmp_path / "patient-key.secret").read_text().strip()
    again = create_app(settings, clock=lambda: b.NOW)  # a restart keeps the same pseudonyms
    assert again.extensions["rls_cds"].feedback.store.patient_key(
        PatientScope("demo", None, None, PATIENT)
    ) == pseudonym(PATIENT, secret)
    for each in (app, again):
        each.extensions["rls_cds"].database.dispose()


# --- a store that is down never fails a hook ---------------------------------------------

DOWN = {
    "postgresql-closed-port": "postgresql://postgres@127.0.0.1:1/none",
    "sqlite-no-such-dir": "sqlite:////nonexistent-rls-cds-dir/none/rls-cds.sqlite3",
}


@pytest.mark.parametrize("url", DOWN.values(), ids=DOWN.keys())
def test_hooks_answer_when_the_store_is_down(url, tmp_path):
    settings = Settings(
        demo=True,
        data_dir=tmp_path,
        database_url=url,
        patient_key_secret=SECRET,
        log_level="CRITICAL",
    )
    app = create_app(settings, clock=lambda: b.NOW)  # start-up does not fail either
    client = app.test_client()
    feedback = app.extensions["rls_cds"].feedback
    for calls in (1, 2):
        cards = cards_by_topic(post_json(client, PATIENT_VIEW, patient_view_body()))
        assert set(cards) == {"iron-below-target", "sedating-antihistamine"}
        flush(app)
        assert feedback.recorder.failed == calls
        assert feedback.recorder.recorded == 0
        # nothing suppressed: cards shown; after one failure the store is not asked for a while
        assert feedback.suppression_failures == 1
        assert feedback.suppression_failures + feedback.suppression_skipped == calls
    assert cards_by_topic(post_json(client, ORDER_SIGN, order_sign_body()))
    flush(app)
    assert feedback.recorder.failed == 3

    item = overridden(cards["sedating-antihistamine"]["uuid"], "patient-declined")
    response = post_json(client, feedback_url(), {"feedback": [item]})
    assert response.status_code == 503
    assert response.is_json
    assert response.get_json()["error"] == "store-unavailable"
    assert response.headers["Retry-After"].isdigit()
