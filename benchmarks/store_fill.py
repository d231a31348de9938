"""Fill a store (SQLite or PostgreSQL) quickly with issued cards and feedback, as a store of a
service that has run for a long time looks: for the history benchmark (H1, H2) and P3.

Cards go in by executemany of one insert, thousands a statement, bypassing the service
(which records them one answer at a time); feedback goes through the store's own write,
``FeedbackStore.store``, so that whatever that write derives (the suppression rows of
migration 0003) is derived as in service. Patients are pseudonymised as the service does,
for the demo client (issuer ``demo``, no tenant), so that hooks sent to a demo-mode server
with the same secret find their history.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from cds_service.auth.model import Client, PatientScope
from cds_service.feedback.models import IssuedCard
from cds_service.feedback.store import FeedbackStore
from cds_service.hooks.wire import FeedbackItem
from cds_service.knowledge import OVERRIDE_REASON_SYSTEM
from cds_service.settings import Settings
from cds_service.store import make_engine

SERVICE = "rls-secondary-causes"
DEMO = Client(issuer="demo", tenant=None)
TOPICS = ("iron-below-target", "sedating-antihistamine", "kidney-function-low")
#: Cards per executemany; also feedback items per store call.
CHUNK = 5_000
#: Reasons of the filled overrides: none of them suppresses (the default reasons are
#: already-addressed and patient-declined), so that a filled patient's hooks answer the same
#: cards as a new patient's and only the history differs.
REASONS = ("not-clinically-relevant", "benefit-outweighs-risk", "tolerated-before")


@dataclass(frozen=True)
class Filled:
    cards: int
    feedback: int


def engine_for(url: str) -> Engine:
    """An engine as the service makes it (SQLite in WAL mode, PostgreSQL's timeouts)."""
    return make_engine(Settings(database_url=url, patient_key_secret="unused"))


def migrated_store(url: str, secret: bytes) -> FeedbackStore:
    """The service's store over `url`, migrated to the newest schema."""
    store = FeedbackStore(engine_for(url), secret)
    store.migrate()
    return store


def fill(
    store: FeedbackStore,
    patients: Iterable[str],
    cards_each: int,
    feedback_every: int = 20,
    now: datetime = datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
    suppressing: Sequence[str] = (),
) -> Filled:
    """`cards_each` cards for each patient (topics in turn, issued over the last year), an
    override with a non-suppressing reason on every `feedback_every`-th card, and for the
    patients in `suppressing` an already-addressed override of iron-below-target yesterday
    (hidden from their hooks, as a real store has some patients)."""
    cards: list[dict[str, object]] = []
    items: list[FeedbackItem] = []
    total = 0
    count = 0
    for patient in patients:
        key = store.patient_key(PatientScope(DEMO.issuer, None, None, patient))
        for n in range(cards_each):
            card = str(uuid.uuid4())
            issued = now - timedelta(minutes=5 * (cards_each - n) + 1)
            cards.append(_card(card, TOPICS[n % len(TOPICS)], key, issued))
            if n % feedback_every == feedback_every - 1:
                items.append(_override(card, REASONS[n % len(REASONS)], issued))
        if patient in suppressing:
            card = str(uuid.uuid4())
            yesterday = now - timedelta(days=1)
            cards.append(_card(card, TOPICS[0], key, yesterday))
            items.append(_override(card, "already-addressed", yesterday))
        if len(cards) >= CHUNK:
            total += _insert_cards(store.engine, cards)
            cards = []
    total += _insert_cards(store.engine, cards)
    for start in range(0, len(items), CHUNK):
        count += store.store(items[start : start + CHUNK], SERVICE, DEMO, now).stored
    settle(store.engine)
    return Filled(total, count)


def settle(engine: Engine) -> None:
    """Statistics of the filled tables, as a store in service has them (PostgreSQL's
    autovacuum): not a freshly bulk-loaded table the planner knows nothing about."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE" if engine.name == "postgresql" else "ANALYZE")


def _card(card: str, topic: str, key: str, issued: datetime) -> dict[str, object]:
    return {
        "card_uuid": card,
        "service_id": SERVICE,
        "topic": topic,
        "hook_instance": card,
        "patient_key": key,
        "issued_at": issued,
        "issuer": DEMO.issuer,
        "tenant": "",
    }


def _override(card: str, code: str, issued: datetime) -> FeedbackItem:
    return FeedbackItem.model_validate(
        {
            "card": card,
            "outcome": "overridden",
            "overrideReason": {"reason": {"system": OVERRIDE_REASON_SYSTEM, "code": code}},
            "outcomeTimestamp": (issued + timedelta(minutes=1)).isoformat(),
        }
    )


def _insert_cards(engine: Engine, cards: list[dict[str, object]]) -> int:
    if not cards:
        return 0
    with engine.begin() as connection:
        connection.execute(insert(IssuedCard), cards)
    return len(cards)
