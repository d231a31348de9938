"""Fixtures of the feedback tests: one store backend per run (SQLite file, PostgreSQL database),
a movable clock, apps on that store, and helpers to issue cards and send feedback over HTTP.

PostgreSQL: the machine's server at 127.0.0.1:5432 (trust auth, user postgres). Each test
session creates its own database (rls_cds_test_<hex>) and drops it at the end; each test
starts from an empty schema in it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

from cds_service.app import create_app
from cds_service.knowledge import OVERRIDE_REASON_SYSTEM
from cds_service.settings import Settings, normalise_database_url
from tests import builders as b

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET = "test-secret"
PATIENT_VIEW = "/cds-services/rls-secondary-causes"
ORDER_SIGN = "/cds-services/rls-order-sign"
TABLES = ("issued_card", "issued_suggestion", "feedback")


def feedback_url(service_id: str = "rls-secondary-causes") -> str:
    return f"/cds-services/{service_id}/feedback"


def pseudonym(
    patient_id: str,
    secret: str = SECRET,
    issuer: str = "demo",
    tenant: str = "",
    fhir_server: str = "",
) -> str:
    """The store's pseudonym of a patient of one client (demo mode: issuer 'demo')."""
    message = json.dumps([issuer, tenant, fhir_server, patient_id], separators=(",", ":"))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def as_utc(value: datetime | str) -> datetime:
    """A timestamp read back by raw SQL (SQLite gives naive text, PostgreSQL aware values)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def terminate(database: str) -> None:
    """Close every other session on `database` (pooled connections of the apps included)."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )


class Clock:
    """The service's clock; tests move it."""

    def __init__(self, now: datetime = b.NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Backend:
    """One store: its URL in the usual form, and direct SQL access for the assertions."""

    name: str
    url: str
    data_dir: Path
    database: str | None = None  # PostgreSQL database name
    _engines: list[Engine] = field(default_factory=list)

    def engine(self) -> Engine:
        engine = create_engine(normalise_database_url(self.url))
        self._engines.append(engine)
        return engine

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "demo": True,
            "data_dir": self.data_dir,
            "database_url": self.url,
            "patient_key_secret": SECRET,
            "log_level": "WARNING",
        }
        return Settings(**(values | overrides))

    def scalar(self, sql: str) -> Any:
        with self._sql() as connection:
            return connection.execute(text(sql)).scalar_one()

    def rows(self, table: str) -> list[dict[str, Any]]:
        with self._sql() as connection:
            return [
                dict(row._mapping) for row in connection.execute(text(f"SELECT * FROM {table}"))
            ]

    def count(self, table: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {table}"))

    def tables(self) -> set[str]:
        return set(inspect(self._sql_engine()).get_table_names())

    def _sql_engine(self) -> Engine:
        if not self._engines:
            self.engine()
        return self._engines[0]

    def _sql(self):
        return self._sql_engine().connect()

    def close(self) -> None:
        for engine in self._engines:
            engine.dispose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop(admin: psycopg.Connection, name: str) -> None:
    terminate(name)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test session, dropped at its end (and, should a session
    be killed before that, by the next session: the name carries the pytest process id)."""
    name = f"rls_cds_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for (stale,) in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'rls\\_cds\\_test\\_%'"
        ).fetchall():
            found = re.fullmatch(r"rls_cds_test_(\d+)_[0-9a-f]+", stale)
            if found and not _alive(int(found.group(1))):
                _drop(admin, stale)
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            _drop(admin, name)


def _empty_schema(database: str) -> None:
    terminate(database)
    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:5432/{database}", autocommit=True
    ) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


def _postgresql(request, tmp_path) -> Backend:
    database = request.getfixturevalue("pg_database")
    _empty_schema(database)
    url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    return Backend("postgresql", url, tmp_path, database)


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def store_backend(request, tmp_path) -> Iterator[Backend]:
    """The store of one test: a SQLite file in tmp_path, or an empty PostgreSQL schema."""
    if request.param == "sqlite":
        backend = Backend("sqlite", f"sqlite:///{tmp_path / 'rls-cds.sqlite3'}", tmp_path)
    else:
        backend = _postgresql(request, tmp_path)
    yield backend
    backend.close()


@pytest.fixture
def pg_backend(request, tmp_path) -> Iterator[Backend]:
    """For what only PostgreSQL has (advisory locks, sessions to terminate)."""
    backend = _postgresql(request, tmp_path)
    yield backend
    backend.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_app(store_backend: Backend, clock: Clock) -> Iterator[Callable[..., Flask]]:
    """Apps on the test's store; their engines are disposed at the end of the test."""
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app(store_backend.settings(**overrides), clock=clock)
        apps.append(app)
        return app

    yield make
    for app in apps:
        runtime = app.extensions["rls_cds"]
        runtime.feedback.recorder.flush()
        runtime.database.dispose()


@pytest.fixture
def app(make_app) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


# --- requests -----------------------------------------------------------------------------


def post_json(client, url: str, body: object):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def patient_view_body(
    patient_id: str = b.PATIENT_ID, antihistamine: bool = True, kidney_ok: bool = True
) -> dict:
    """An RLS patient with low ferritin (iron-below-target) and, by default, diphenhydramine
    (sedating-antihistamine)."""
    resources = [
        b.rls(patient_id=patient_id),
        b.observation(b.FERRITIN, 38, "ng/mL", patient_id=patient_id),
    ]
    if kidney_ok:
        resources.append(b.kidney_ok(patient_id=patient_id))
    if antihistamine:
        resources.append(
            b.medication_request(text="Diphenhydramine 25 mg tablet", patient_id=patient_id)
        )
    prefetch = b.prefetch(*resources, with_patient=b.patient(patient_id))
    body = b.hook_request(prefetch)
    body["context"]["patientId"] = patient_id
    return body


def order_sign_body(patient_id: str = b.PATIENT_ID) -> dict:
    """order-sign of a hydroxyzine draft (sedating-antihistamine) for an RLS patient."""
    draft = b.medication_request(text="Hydroxyzine 25 mg tablet", status="draft")
    draft["id"] = "hx"
    draft["subject"] = {"reference": f"Patient/{patient_id}"}
    prefetch = b.prefetch(
        b.rls(patient_id=patient_id),
        b.kidney_ok(patient_id=patient_id),
        with_patient=b.patient(patient_id),
    )
    del prefetch["serviceRequests"], prefetch["procedures"]
    return {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/example",
            "patientId": patient_id,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": draft}],
            },
        },
        "prefetch": prefetch,
    }


def cards_by_topic(response) -> dict[str, dict]:
    assert response.status_code == 200, response.get_json()
    return {card["source"]["topic"]["code"]: card for card in response.get_json()["cards"]}


def overridden(
    card: str, code: str | None, when: datetime = b.NOW, system: str = OVERRIDE_REASON_SYSTEM
) -> dict:
    item: dict[str, Any] = {"card": card, "outcome": "overridden", "outcomeTimestamp": iso(when)}
    if code is not None:
        item["overrideReason"] = {"reason": {"system": system, "code": code}}
    return item


def accepted(card: dict, when: datetime = b.NOW) -> dict:
    return {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": iso(when),
    }


def legacy_feedback(backend: Backend, card: str, code: str | None, when: datetime) -> None:
    """A feedback row as stored before migration 0002, about a card the store does not know
    (the service stored those; it refuses them now): the report still counts them."""
    row = {
        "item_key": uuid.uuid4().hex,
        "card_uuid": card,
        "service_id": "rls-secondary-causes",
        "outcome": "overridden",
        "accepted_suggestions": "[]",
        "reason_system": OVERRIDE_REASON_SYSTEM if code else None,
        "reason_code": code,
        "user_comment": None,
        "outcome_at": when,
        "received_at": when,
        "client": "demo",
    }
    columns = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    with backend._sql_engine().begin() as connection:
        connection.execute(text(f"INSERT INTO feedback ({columns}) VALUES ({values})"), row)


def flush(app: Flask) -> None:
    assert app.extensions["rls_cds"].feedback.recorder.flush()
