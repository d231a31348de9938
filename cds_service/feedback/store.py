"""The feedback store: issued cards, feedback items, suppression and the override report.

Every write is one transaction that either commits or raises StoreUnavailable: feedback is
acknowledged only once it is stored (the client retries a 503), and the same item sent
twice is stored once (insert-or-ignore on a key derived from the item). Cards, feedback and
suppression are bound to the client (issuer, tenant) a card was issued to (see models).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from cds_service.auth.model import Client, PatientScope
from cds_service.errors import StoreUnavailable
from cds_service.feedback.models import Feedback, IssuedCard, IssuedSuggestion
from cds_service.hooks.wire import FeedbackItem

MIGRATIONS = Path(__file__).parent / "migrations"
#: Serialises migrations of several workers starting at once (PostgreSQL advisory lock).
_MIGRATION_LOCK = 0x726C7363
_BATCH = 500
_MIGRATING = threading.Lock()


@dataclass(frozen=True)
class IssuedCards:
    """What one hook answer issued: recorded so that feedback can be tied to it."""

    service_id: str
    hook_instance: str
    issuer: str
    tenant: str | None
    patient_key: str
    issued_at: datetime
    cards: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Stored:
    received: int
    stored: int

    @property
    def already_stored(self) -> int:
        return self.received - self.stored


@dataclass(frozen=True)
class Override:
    """The latest suppressing override of one topic for one patient."""

    topic: str
    reason_code: str
    overridden_at: datetime


@dataclass
class TopicReport:
    topic: str
    issued: int = 0
    accepted: int = 0
    overridden: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def override_rate(self) -> float | None:
        answered = self.accepted + self.overridden
        return round(self.overridden / answered, 4) if answered else None


class FeedbackStore:
    """SQLAlchemy access to the store; SQLite and PostgreSQL alike."""

    def __init__(self, engine: Engine, secret: bytes | None, migrated: bool = False):
        self.engine = engine
        self._secret = secret
        self._migrated = migrated

    def ensure_migrated(self) -> None:
        """Migrate once; a store that was down at start-up is migrated on first use."""
        if not self._migrated:
            with _MIGRATING:
                if not self._migrated:
                    self._migrate()

    def migrate(self) -> None:
        """Bring the schema to the newest migration (Alembic); safe with several workers
        (an advisory lock on PostgreSQL) and several apps in one process (Alembic's context
        is process-global)."""
        with _MIGRATING:
            self._migrate()

    def _migrate(self) -> None:
        """Migrate; the caller holds _MIGRATING. Alembic is imported here only: it brings
        mako and pygments (about 170 ms) that nothing else needs."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # A migration may take long, and the other workers starting at once wait for
                # it on the lock.
                _unbounded(connection)
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        self._migrated = True

    def patient_key(self, patient: PatientScope) -> str:
        """The keyed pseudonym of a patient of one client (HMAC-SHA256, hex) over issuer,
        tenant, fhirServer and id: the same id elsewhere is another patient."""
        if self._secret is None:
            raise ValueError("this store was opened without the pseudonym secret")
        parts = [
            patient.issuer,
            patient.tenant or "",
            patient.fhir_server or "",
            patient.patient_id,
        ]
        message = json.dumps(parts, separators=(",", ":")).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def record(self, answers: Sequence[IssuedCards]) -> None:
        """Record the cards (and their suggestions) of some answers in one transaction;
        raises SQLAlchemyError."""
        cards = [
            {
                "card_uuid": card["uuid"],
                "service_id": issued.service_id,
                "topic": card["source"]["topic"]["code"],
                "hook_instance": issued.hook_instance,
                "patient_key": issued.patient_key,
                "issued_at": issued.issued_at,
                "issuer": issued.issuer,
                "tenant": issued.tenant or "",
            }
            for issued in answers
            for card in issued.cards
        ]
        suggestions = [
            {"suggestion_uuid": suggestion["uuid"], "card_uuid": card["uuid"]}
            for issued in answers
            for card in issued.cards
            for suggestion in card.get("suggestions", [])
        ]
        self.ensure_migrated()
        with self.engine.begin() as connection:
            _insert_new(connection, IssuedCard, cards, "card_uuid")
            if suggestions:
                _insert_new(connection, IssuedSuggestion, suggestions, "suggestion_uuid")

    def issued(
        self, card_uuids: Iterable[str], service_id: str, client: Client
    ) -> dict[str, datetime]:
        """When each of these cards was issued to `client` at `service_id` (cards issued to
        anyone else, elsewhere, or never, are absent); StoreUnavailable on failure."""
        wanted = list(dict.fromkeys(card_uuids))
        found: dict[str, datetime] = {}
        try:
            self.ensure_migrated()
            with self.engine.connect() as connection:
                for start in range(0, len(wanted), _BATCH):
                    query = select(IssuedCard.card_uuid, IssuedCard.issued_at).where(
                        IssuedCard.card_uuid.in_(wanted[start : start + _BATCH]),
                        IssuedCard.service_id == service_id,
                        IssuedCard.issuer == client.issuer,
                        IssuedCard.tenant == (client.tenant or ""),
                    )
                    for card_uuid, issued_at in connection.execute(query):
                        found[card_uuid] = _aware(issued_at)
        except SQLAlchemyError as exc:
            raise StoreUnavailable("the feedback could not be checked; retry later") from exc
        return found

    def store(
        self, items: Sequence[FeedbackItem], service_id: str, client: Client, now: datetime
    ) -> Stored:
        """Store feedback items, each once; StoreUnavailable when they could not be stored."""
        rows = [_feedback_row(item, service_id, client, now) for item in items]
        unique = list({row["item_key"]: row for row in rows}.values())
        try:
            self.ensure_migrated()
            with self.engine.begin() as connection:
                stored = _insert_new(connection, Feedback, unique, "item_key")
        except SQLAlchemyError as exc:
            raise StoreUnavailable("the feedback could not be stored; retry later") from exc
        return Stored(received=len(items), stored=stored)

    def suppressed(
        self,
        patient: PatientScope,
        topics: Iterable[str],
        reasons: Iterable[str],
        system: str,
        since: datetime,
        service_id: str,
    ) -> set[str]:
        """Topics a clinician of the same client overrode on a card of `service_id` for this
        patient since `since` with one of `reasons`."""
        return {
            o.topic for o in self.overrides(patient, topics, reasons, system, since, service_id)
        }

    def overrides(
        self,
        patient: PatientScope,
        topics: Iterable[str],
        reasons: Iterable[str],
        system: str,
        since: datetime,
        service_id: str,
    ) -> list[Override]:
        """Per topic, the latest override that suppresses it (see `suppressed`): what the
        demo page tells about the cards it did not show. Sorted by topic."""
        topics = list(topics)
        if not topics:
            return []
        tenant = patient.tenant or ""
        query = (
            select(IssuedCard.topic, Feedback.reason_code, func.max(Feedback.outcome_at))
            .join(Feedback, Feedback.card_uuid == IssuedCard.card_uuid)
            .where(
                *self._of_patient(patient),
                Feedback.client == patient.issuer,
                Feedback.tenant == tenant,
                IssuedCard.service_id == service_id,
                IssuedCard.topic.in_(topics),
                Feedback.outcome == "overridden",
                Feedback.reason_system == system,
                Feedback.reason_code.in_(list(reasons)),
                Feedback.outcome_at >= since.astimezone(UTC),
            )
            .group_by(IssuedCard.topic, Feedback.reason_code)
        )
        self.ensure_migrated()
        latest: dict[str, Override] = {}
        with self.engine.connect() as connection:
            for topic, reason, moment in connection.execute(query):
                found = Override(topic, reason or "", _aware(moment))
                if topic not in latest or found.overridden_at > latest[topic].overridden_at:
                    latest[topic] = found
        return [latest[topic] for topic in sorted(latest)]

    def forget(self, patient: PatientScope) -> int:
        """Delete the feedback the patient's own client sent on cards issued to it for this
        patient (the demo page's reset); the number of items deleted. Cards stay issued (the
        report still counts them); no other client's or tenant's feedback is touched.
        Raises SQLAlchemyError."""
        tenant = patient.tenant or ""
        cards = select(IssuedCard.card_uuid).where(*self._of_patient(patient))
        statement = (
            delete(Feedback)
            .where(
                Feedback.card_uuid.in_(cards),
                Feedback.client == patient.issuer,
                Feedback.tenant == tenant,
            )
            .returning(Feedback.item_key)  # rowcount is -1 here with psycopg 3
        )
        self.ensure_migrated()
        with self.engine.begin() as connection:
            return len(connection.execute(statement).all())

    def _of_patient(self, patient: PatientScope) -> tuple[ColumnElement[bool], ...]:
        """Cards issued to the patient's client (issuer, tenant) for this patient."""
        return (
            IssuedCard.patient_key == self.patient_key(patient),
            IssuedCard.issuer == patient.issuer,
            IssuedCard.tenant == (patient.tenant or ""),
        )

    def report(self, since: datetime | None) -> tuple[list[TopicReport], int]:
        """Per topic: cards issued, accepted, overridden and the override reasons; and the
        number of feedback items about cards this store never issued."""
        by_topic: dict[str, TopicReport] = {}

        def topic(code: str) -> TopicReport:
            return by_topic.setdefault(code, TopicReport(code))

        issued = select(IssuedCard.topic, func.count()).group_by(IssuedCard.topic)
        answered = (
            select(IssuedCard.topic, Feedback.outcome, Feedback.reason_code, func.count())
            .join(IssuedCard, IssuedCard.card_uuid == Feedback.card_uuid)
            .group_by(IssuedCard.topic, Feedback.outcome, Feedback.reason_code)
        )
        unknown = (
            select(func.count())
            .select_from(Feedback)
            .outerjoin(IssuedCard, IssuedCard.card_uuid == Feedback.card_uuid)
            .where(IssuedCard.card_uuid.is_(None))
        )
        self.ensure_migrated()
        if since is not None:
            since = since.astimezone(UTC)  # SQLite compares the stored UTC text
            issued = issued.where(IssuedCard.issued_at >= since)
            answered = answered.where(Feedback.outcome_at >= since)
            unknown = unknown.where(Feedback.outcome_at >= since)
        with self.engine.connect() as connection:
            _unbounded(connection)  # an offline command over the whole store: it may take long
            for code, count in connection.execute(issued):
                topic(code).issued = count
            for code, outcome, reason, count in connection.execute(answered):
                entry = topic(code)
                if outcome == "accepted":
                    entry.accepted += count
                else:
                    entry.overridden += count
                    entry.reasons[reason or "(no reason given)"] += count
            unknown_count = connection.execute(unknown).scalar_one()
        return sorted(by_topic.values(), key=lambda r: r.topic), unknown_count


def _unbounded(connection: Connection) -> None:
    """Lift the store timeout (cds_service.store) for this transaction: for what no request
    waits on (migrations, the report)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        connection.execute(text("SET LOCAL lock_timeout = 0"))


def _insert_new(
    connection: Connection, model: type[Any], rows: list[dict[str, Any]], key: str
) -> int:
    """Insert the rows whose key is not stored yet; the number inserted."""
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    inserted = 0
    for start in range(0, len(rows), _BATCH):  # SQLite binds at most 32766 parameters
        batch = rows[start : start + _BATCH]
        statement = (
            insert(model)
            .values(batch)
            .on_conflict_do_nothing(index_elements=[key])
            .returning(getattr(model, key))  # rowcount is -1 here with psycopg 3
        )
        inserted += len(connection.execute(statement).all())
    return inserted


def _aware(moment: datetime) -> datetime:
    """SQLite gives stored UTC times back naive."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _feedback_row(item: FeedbackItem, service_id: str, client: Client, now: datetime) -> dict:
    reason = item.overrideReason.reason if item.overrideReason else None
    canonical = json.dumps(item.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return {
        "item_key": hashlib.sha256(f"{service_id}\n{canonical}".encode()).hexdigest(),
        "card_uuid": item.card,
        "service_id": service_id,
        "outcome": item.outcome,
        "accepted_suggestions": [s.id for s in item.acceptedSuggestions],
        "reason_system": reason.system if reason else None,
        "reason_code": reason.code if reason else None,
        "user_comment": item.overrideReason.userComment if item.overrideReason else None,
        "outcome_at": item.outcomeTimestamp,
        "received_at": now,
        "client": client.issuer,
        "tenant": client.tenant or "",
    }
