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
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from cds_service.auth.model import Client, PatientScope
from cds_service.errors import StoreUnavailable
from cds_service.feedback.models import Feedback, IssuedCard, IssuedSuggestion, Suppression
from cds_service.hooks.wire import FeedbackItem

MIGRATIONS = Path(__file__).parent / "migrations"
#: Serialises migrations of several workers starting at once (PostgreSQL advisory lock).
_MIGRATION_LOCK = 0x726C7363
_BATCH = 500
_MIGRATING = threading.Lock()
#: Most patients whose "nothing suppressed" one process remembers (then it starts afresh).
CACHE_ENTRIES = 50_000
#: A patient's suppression rows, one primary-key range lookup. Built once: a hook pays for
#: executing it, not for building and compiling a query (SQLAlchemy caches the compiled form
#: per engine under this statement's key).
_SUPPRESSION_ROWS = select(
    Suppression.service_id,
    Suppression.topic,
    Suppression.reason_system,
    Suppression.reason_code,
    Suppression.overridden_at,
).where(
    Suppression.patient_key == bindparam("patient_key"),
    Suppression.issuer == bindparam("issuer"),
    Suppression.tenant == bindparam("tenant"),
)
_SUPPRESSION_KEY = (
    "patient_key",
    "issuer",
    "tenant",
    "service_id",
    "topic",
    "reason_system",
    "reason_code",
)
#: Insert-or-ignore of issued cards and suggestions (executemany), per dialect, built once.
_RECORD = {
    name: (
        insert(IssuedCard).on_conflict_do_nothing(index_elements=["card_uuid"]),
        insert(IssuedSuggestion).on_conflict_do_nothing(index_elements=["suggestion_uuid"]),
    )
    for name, insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}


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

    def __init__(
        self,
        engine: Engine,
        secret: bytes | None,
        migrated: bool = False,
        cache_s: float = 0.0,
    ):
        self.engine = engine
        self._secret = secret
        self._migrated = migrated
        # Patients read to have nothing suppressed: until when (monotonic), for which reason
        # system and codes. See unsuppressed.
        self._cache_s = cache_s
        self._unsuppressed: dict[tuple[str, str, str], tuple[float, str, frozenset[str]]] = {}
        self._generation = 0
        self._cache_lock = threading.Lock()

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
            # executemany of a prebuilt statement: no statement built or compiled per call
            cards_insert, suggestions_insert = _RECORD[connection.dialect.name]
            connection.execute(cards_insert, cards)
            if suggestions:
                connection.execute(suggestions_insert, suggestions)

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
                touched = _write_suppressions(connection, unique, client)
        except SQLAlchemyError as exc:
            raise StoreUnavailable("the feedback could not be stored; retry later") from exc
        # Every item's patient, stored now or before (a retry after a lost commit answer):
        # this process never serves a "nothing suppressed" it remembers from before.
        self._forget_cached(touched)
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
        wanted = set(topics)
        if not wanted:
            return []
        codes = frozenset(reasons)
        since = since.astimezone(UTC)
        key = self._cache_key(patient)
        generation = self._generation
        latest: dict[str, Override] = {}
        suppressing = False
        for row_service, topic, reason_system, reason_code, moment in self._suppression_rows(key):
            if reason_system != system or reason_code not in codes:
                continue
            overridden_at = _aware(moment)
            if overridden_at < since:
                continue
            suppressing = True  # for some topic of some service, asked now or not
            if row_service != service_id or topic not in wanted:
                continue
            found = Override(topic, reason_code, overridden_at)
            if topic not in latest or found.overridden_at > latest[topic].overridden_at:
                latest[topic] = found
        if not suppressing:
            self._remember_unsuppressed(key, generation, system, codes)
        return [latest[topic] for topic in sorted(latest)]

    def unsuppressed(self, patient: PatientScope, reasons: Iterable[str], system: str) -> bool:
        """Whether this process read, less than the cache time ago, that nothing at all is
        suppressed for this patient of this client with these reasons; answers without the
        store. (An override older than the window cannot come back into it: the window
        only moves forward.)

        Only that answer is remembered: feedback stored through this process forgets it at
        once, feedback stored through another process (a gunicorn worker, an instance) is
        seen here at most the cache time later. Staleness can therefore only show a card
        again for those seconds, which is safe; a card is never hidden from memory, so a
        store that fails or stops answering is seen as such by the next hook."""
        if self._cache_s <= 0:
            return False
        entry = self._unsuppressed.get(self._cache_key(patient))
        return (
            entry is not None
            and entry[0] > time.monotonic()
            and entry[1] == system
            and entry[2] == frozenset(reasons)
        )

    def _cache_key(self, patient: PatientScope) -> tuple[str, str, str]:
        return (self.patient_key(patient), patient.issuer, patient.tenant or "")

    def _suppression_rows(self, key: tuple[str, str, str]) -> list[Any]:
        """The patient's suppression rows (all services, topics and reasons): a handful
        whatever the history, by one primary-key range lookup."""
        self.ensure_migrated()
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    _SUPPRESSION_ROWS, {"patient_key": key[0], "issuer": key[1], "tenant": key[2]}
                )
            )

    def _remember_unsuppressed(
        self, key: tuple[str, str, str], generation: int, system: str, codes: frozenset[str]
    ) -> None:
        if self._cache_s <= 0:
            return
        with self._cache_lock:
            # Not if feedback was stored meanwhile: the read may predate it.
            if self._generation == generation:
                if len(self._unsuppressed) >= CACHE_ENTRIES:
                    self._unsuppressed.clear()
                self._unsuppressed[key] = (time.monotonic() + self._cache_s, system, codes)

    def _forget_cached(self, keys: Iterable[tuple[str, str, str]]) -> None:
        with self._cache_lock:
            self._generation += 1
            for key in keys:
                self._unsuppressed.pop(key, None)

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
        key = self._cache_key(patient)
        rows = delete(Suppression).where(
            Suppression.patient_key == key[0],
            Suppression.issuer == key[1],
            Suppression.tenant == key[2],
        )
        self.ensure_migrated()
        try:
            with self.engine.begin() as connection:
                connection.execute(rows)
                return len(connection.execute(statement).all())
        finally:
            self._forget_cached([key])

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


def _write_suppressions(
    connection: Connection, rows: Sequence[Mapping[str, Any]], client: Client
) -> list[tuple[str, str, str]]:
    """Upsert the suppression rows of the overrides with a coded reason among `rows` (each
    on a card issued to `client`, as the old join required), keeping the latest override
    time per key; the cache keys of every item's patient."""
    cards = list({row["card_uuid"] for row in rows})
    tenant = client.tenant or ""
    found: dict[str, tuple[str, str, str]] = {}
    for start in range(0, len(cards), _BATCH):
        query = select(
            IssuedCard.card_uuid, IssuedCard.patient_key, IssuedCard.service_id, IssuedCard.topic
        ).where(
            IssuedCard.card_uuid.in_(cards[start : start + _BATCH]),
            IssuedCard.issuer == client.issuer,
            IssuedCard.tenant == tenant,
        )
        for card_uuid, patient_key, service_id, topic in connection.execute(query):
            found[card_uuid] = (patient_key, service_id, topic)
    latest: dict[tuple[str, ...], datetime] = {}
    for row in rows:
        card = found.get(row["card_uuid"])
        if card is None or row["outcome"] != "overridden":
            continue
        if row["reason_system"] is None or row["reason_code"] is None:
            continue
        patient_key, service_id, topic = card
        reason: tuple[str, str] = (row["reason_system"], row["reason_code"])
        key = (patient_key, client.issuer, tenant, service_id, topic, *reason)
        moment = row["outcome_at"].astimezone(UTC)
        if key not in latest or moment > latest[key]:
            latest[key] = moment
    if latest:
        names = _SUPPRESSION_KEY
        values = [dict(zip(names, key, strict=True)) | {"overridden_at": moment}
                  for key, moment in latest.items()]  # fmt: skip
        insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
        statement = insert(Suppression).values(values)
        newer = statement.excluded.overridden_at
        statement = statement.on_conflict_do_update(
            index_elements=list(names),
            set_={
                "overridden_at": case(
                    (newer > Suppression.overridden_at, newer), else_=Suppression.overridden_at
                )
            },
        )
        connection.execute(statement)
    return list({(patient_key, client.issuer, tenant) for patient_key, _, _ in found.values()})


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
