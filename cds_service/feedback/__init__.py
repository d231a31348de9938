"""The feedback side of the service: issued-card index, feedback store, suppression.

``FeedbackService`` is what the HTTP adapters and the evaluator use; it hides SQLAlchemy.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cds_service import metrics
from cds_service.feedback.recorder import CardRecorder
from cds_service.feedback.store import FeedbackStore, IssuedCards, Stored
from cds_service.hooks.services import PATIENT_VIEW
from cds_service.hooks.wire import FeedbackItem
from cds_service.knowledge import OVERRIDE_REASON_SYSTEM
from cds_service.settings import Settings
from cds_service.store import in_memory

log = logging.getLogger(__name__)

SECRET_FILE = "patient-key.secret"
#: After the store failed a suppression check, hooks skip it for this long.
RETRY_AFTER_FAILURE_S = 30.0


class SecretMissing(ValueError):
    """Raised at start-up when a shared database has no configured pseudonym secret."""


class FeedbackService:
    def __init__(self, store: FeedbackStore, settings: Settings):
        self.store = store
        self.recorder = CardRecorder(store.record)
        self._window = timedelta(days=settings.suppression_days)
        self._reasons = settings.suppressing_reasons
        self._skip_until = 0.0
        self.suppression_failures = 0
        self.suppression_skipped = 0

    def record(
        self,
        service_id: str,
        hook_instance: str,
        patient_id: str,
        cards: Sequence[dict[str, Any]],
        now: datetime,
    ) -> None:
        """Hand an answer's cards to the background recorder (never slows the hook)."""
        if cards:
            key = self.store.patient_key(patient_id)
            self.recorder.record(IssuedCards(service_id, hook_instance, key, now, cards))

    def suppressed(self, patient_id: str, topics: Iterable[str], now: datetime) -> set[str]:
        """Patient-view topics overridden for this patient as handled or declined within the
        window (an override of an order card is about that order, not the topic).

        When the store cannot answer, nothing is suppressed: showing a card again is safe,
        hiding one by mistake is not. The failure is counted and logged.
        """
        if not self._window or not self._reasons:
            return set()
        try:
            if time.monotonic() < self._skip_until:
                self.suppression_skipped += 1
                return set()
            return self.store.suppressed(
                patient_id,
                topics,
                self._reasons,
                OVERRIDE_REASON_SYSTEM,
                now - self._window,
                PATIENT_VIEW,
            )
        except SQLAlchemyError as exc:
            # Do not make every hook wait for a store that just failed: ask again later.
            self._skip_until = time.monotonic() + RETRY_AFTER_FAILURE_S
            self.suppression_failures += 1
            metrics.STORE_FAILURES.labels("suppression").inc()
            log.warning(
                "suppression not checked: the store failed", extra={"error": type(exc).__name__}
            )
            return set()

    def store_feedback(
        self, items: Sequence[FeedbackItem], service_id: str, client: str, now: datetime
    ) -> Stored:
        return self.store.store(items, service_id, client, now)


def patient_key_secret(settings: Settings) -> bytes:
    """The configured secret; for a SQLite store, one kept in the data directory.

    A shared database (PostgreSQL) is used by several instances, which must all derive the
    same pseudonyms: there the secret must be configured.
    """
    if settings.patient_key_secret is not None:
        return settings.patient_key_secret.get_secret_value().encode()
    url = settings.effective_database_url
    if in_memory(url):
        return secrets.token_bytes(32)  # the database lives as long as this process
    if not url.startswith("sqlite:"):
        raise SecretMissing(
            "RLS_CDS_PATIENT_KEY_SECRET must be set when DATABASE_URL is: every instance must "
            "pseudonymise patient ids with the same key"
        )
    return _local_secret(settings.data_dir / SECRET_FILE)


def _local_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def build_feedback(settings: Settings, engine: Engine) -> FeedbackService:
    """The store over `engine`, migrated at start-up when the settings say so, and its
    recorder. A database that is down at start-up does not stop the service: hooks answer,
    and the store is migrated on its first use once the database is back."""
    store = FeedbackStore(
        engine, patient_key_secret(settings), migrated=not settings.migrate_on_start
    )
    if settings.migrate_on_start:
        try:
            store.migrate()
        except SQLAlchemyError as exc:
            log.error(
                "store not migrated at start-up; retried on first use",
                extra={"error": type(exc).__name__},
            )
    return FeedbackService(store, settings)
