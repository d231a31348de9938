"""The feedback side of the service: issued-card index, feedback store, suppression.

``FeedbackService`` is what the HTTP adapters and the evaluator use; it hides SQLAlchemy.
Feedback is accepted only about cards issued to the sending client at that service
(else 404, never saying whether the card exists elsewhere), with an ``outcomeTimestamp``
between the card's issue and the feedback's receipt (each with a small clock skew), and
within the client's quota of items (429).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cds_service import metrics
from cds_service.auth.model import Client, PatientScope
from cds_service.auth.replay import redis_client
from cds_service.bounded import BoundedCalls, Overdue
from cds_service.card_ids import issued_recently
from cds_service.errors import CardsNotRecordedYet, RequestInvalid, StoreUnavailable, UnknownCards
from cds_service.feedback.recorder import CardRecorder
from cds_service.feedback.store import FeedbackStore, IssuedCards, Stored
from cds_service.hooks.services import PATIENT_VIEW
from cds_service.hooks.wire import FeedbackItem
from cds_service.knowledge import OVERRIDE_REASON_SYSTEM
from cds_service.quota import MemoryQuota, Quota, RedisQuota
from cds_service.settings import Settings
from cds_service.store import in_memory, reachable

log = logging.getLogger(__name__)

SECRET_FILE = "patient-key.secret"
#: After the store failed a suppression check, hooks skip it for this long.
RETRY_AFTER_FAILURE_S = 30.0
#: Longest wait for this process's card recorder before a card is called unknown.
RECORDER_WAIT_S = 2.0
UNKNOWN_CARD = "no card with this uuid was issued to this client by this service"
#: Suppression reads stuck on a silent store at once, per process; beyond, hooks do without.
SUPPRESSION_SLOTS = 16
#: Feedback, readiness and demo-page store calls stuck at once, per process.
REQUEST_SLOTS = 8
#: Longest wait of /readyz for the store: below the probe's timeout (2 s in deploy/k8s).
READY_BUDGET_S = 1.0
T = TypeVar("T")


class SecretMissing(ValueError):
    """Raised at start-up when a shared database has no configured pseudonym secret."""


@dataclass(frozen=True)
class Suppression:
    """Why a patient-view topic is not shown to a patient: the override that hides it."""

    topic: str
    reason_code: str
    since: datetime
    """When the clinician overrode it (the latest such override)."""
    until: datetime
    """When the card shows again, unless overridden again."""


class FeedbackService:
    def __init__(self, store: FeedbackStore, settings: Settings, quota: Quota):
        self.store = store
        self.recorder = CardRecorder(store.record, flush_s=settings.recorder_flush_s)
        self.quota = quota
        # Two bulkheads: feedback POSTs stuck on the store never take the hooks' slots.
        self._reads = BoundedCalls(SUPPRESSION_SLOTS, "suppression-read")
        self._calls = BoundedCalls(REQUEST_SLOTS, "store-call")
        self._suppression_budget_s = settings.suppression_budget_s
        self._store_timeout_s = settings.store_timeout_s
        self._timeout_logged_at: float | None = None
        self._window = timedelta(days=settings.suppression_days)
        self._reasons = settings.suppressing_reasons
        self._skew = timedelta(seconds=settings.feedback_clock_skew_s)
        self._skip_until = 0.0
        self.suppression_failures = 0
        self.suppression_skipped = 0

    def record(
        self,
        service_id: str,
        hook_instance: str,
        patient: PatientScope,
        cards: Sequence[dict[str, Any]],
        now: datetime,
    ) -> None:
        """Hand an answer's cards to the background recorder (never slows the hook)."""
        if cards:
            key = self.store.patient_key(patient)
            issued = IssuedCards(
                service_id, hook_instance, patient.issuer, patient.tenant, key, now, cards
            )
            self.recorder.record(issued)

    def suppressed(self, patient: PatientScope, topics: Iterable[str], now: datetime) -> set[str]:
        """Patient-view topics overridden for this patient as handled or declined within the
        window (an override of an order card is about that order, not the topic).

        When the store cannot answer, or not within the suppression budget, nothing is
        suppressed: showing a card again is safe, hiding one by mistake is not. The failure
        is counted and logged.
        """
        if not self._window or not self._reasons:
            return set()
        topics = list(topics)
        try:
            # On this thread: no store, no worker thread.
            if self.store.unsuppressed(patient, self._reasons, OVERRIDE_REASON_SYSTEM):
                return set()
            if time.monotonic() < self._skip_until:
                self.suppression_skipped += 1
                return set()
            return self._reads.call(
                lambda: self.store.suppressed(
                    patient,
                    topics,
                    self._reasons,
                    OVERRIDE_REASON_SYSTEM,
                    now - self._window,
                    PATIENT_VIEW,
                ),
                self._suppression_budget_s,
            )
        except Overdue:
            # A silent store: this hook does without; the read, still waiting, keeps its slot.
            metrics.STORE_FAILURES.labels("suppression-timeout").inc()
            self._log_timeout()
            return set()
        except SQLAlchemyError as exc:
            # Do not make every hook wait for a store that just failed: ask again later.
            self._skip_until = time.monotonic() + RETRY_AFTER_FAILURE_S
            self.suppression_failures += 1
            metrics.STORE_FAILURES.labels("suppression").inc()
            log.warning(
                "suppression not checked: the store failed", extra={"error": type(exc).__name__}
            )
            return set()

    def _log_timeout(self) -> None:
        """One warning per RETRY_AFTER_FAILURE_S, however many hooks do without."""
        moment = time.monotonic()
        last = self._timeout_logged_at
        if last is None or moment - last >= RETRY_AFTER_FAILURE_S:
            self._timeout_logged_at = moment
            log.warning(
                "suppression not checked: the store did not answer in time",
                extra={"budget_s": self._suppression_budget_s},
            )

    def bounded(self, function: Callable[[], T], what: str) -> T:
        """`function()` (a store call) within the store timeout, else StoreUnavailable (503
        with Retry-After) saying `what` could not be done."""
        try:
            return self._calls.call(function, self._store_timeout_s)
        except Overdue:
            raise StoreUnavailable(
                f"{what}: the store did not answer in time; retry later"
            ) from None

    def reachable(self) -> bool:
        """Whether the store answers a trivial query within READY_BUDGET_S (for /readyz)."""
        try:
            return self._calls.call(lambda: reachable(self.store.engine), READY_BUDGET_S)
        except Overdue:
            return False

    def suppressions(
        self, patient: PatientScope, topics: Iterable[str], now: datetime
    ) -> list[Suppression]:
        """The overrides behind `topics` (those `suppressed` hid), for the demo page's
        notice; StoreUnavailable when the store cannot say."""
        try:
            overrides = self.bounded(
                lambda: self.store.overrides(
                    patient,
                    topics,
                    self._reasons,
                    OVERRIDE_REASON_SYSTEM,
                    now - self._window,
                    PATIENT_VIEW,
                ),
                "the feedback store cannot say why cards were hidden",
            )
        except SQLAlchemyError as exc:
            raise StoreUnavailable("the feedback store cannot say why cards were hidden") from exc
        return [
            Suppression(o.topic, o.reason_code, o.overridden_at, o.overridden_at + self._window)
            for o in overrides
        ]

    def forget(self, patient: PatientScope) -> int:
        """Delete the feedback of the patient's client about this patient (the demo page's
        reset): its cards show again. The number of items deleted; StoreUnavailable."""
        try:
            return self.bounded(
                lambda: self.store.forget(patient), "the feedback could not be deleted"
            )
        except SQLAlchemyError as exc:
            raise StoreUnavailable("the feedback could not be deleted; retry later") from exc

    def store_feedback(
        self, items: Sequence[FeedbackItem], service_id: str, client: Client, now: datetime
    ) -> Stored:
        """Check and store the items of one POST, all or none.

        QuotaExceeded (429) beyond the client's quota; RequestInvalid (400, naming the item)
        for an outcome later than now or earlier than its card; UnknownCards (404, naming
        the item) for a card not issued to this client at this service, or
        CardsNotRecordedYet (503) while this process still has cards to record or when
        every such card was stamped a moment ago; StoreUnavailable (503) when the store
        fails or does not answer within the store timeout.
        """
        self.quota.charge(_quota_key(client), len(items))
        late = now + self._skew
        self._refuse_times(
            items, lambda item: item.outcomeTimestamp > late, "is later than its receipt"
        )
        # Within the store timeout, else 503: items stored after that are stored once,
        # whenever the client retries.
        return self.bounded(
            lambda: self._check_and_store(items, service_id, client, now),
            "the feedback could not be stored",
        )

    def _check_and_store(
        self, items: Sequence[FeedbackItem], service_id: str, client: Client, now: datetime
    ) -> Stored:
        """The store's part of store_feedback (run within its bound)."""
        issued = self._issued(items, service_id, client)
        missing = [{"loc": f"feedback[{i}].card", "msg": UNKNOWN_CARD}
                   for i, item in enumerate(items) if item.card not in issued]  # fmt: skip
        if missing:
            unknown = [item.card for item in items if item.card not in issued]
            if self.recorder.pending() or all(
                issued_recently(card, now.timestamp()) for card in unknown
            ):
                raise CardsNotRecordedYet(
                    "feedback names cards issued a moment ago and not recorded yet; retry"
                )
            metrics.FEEDBACK_REFUSED.labels("unknown-card").inc(len(missing))
            raise UnknownCards("feedback names cards this service did not issue here", missing)
        self._refuse_times(
            items,
            lambda item: item.outcomeTimestamp < issued[item.card] - self._skew,
            "is earlier than the card was issued",
        )
        return self.store.store(items, service_id, client, now)

    def _issued(
        self, items: Sequence[FeedbackItem], service_id: str, client: Client
    ) -> dict[str, datetime]:
        """When the items' cards were issued to the client here. A card this process has
        just answered may still be on its way to the store: then wait for the recorder and
        look again. (The recorder marks a card done only once committed, so when nothing is
        pending before the first look, every card handed over earlier is visible to it.)"""
        cards = [item.card for item in items]
        was_pending = self.recorder.pending()
        issued = self.store.issued(cards, service_id, client)
        if len(issued) < len(set(cards)) and was_pending:
            self.recorder.flush(RECORDER_WAIT_S)
            issued = self.store.issued(cards, service_id, client)
        return issued

    @staticmethod
    def _refuse_times(
        items: Sequence[FeedbackItem], wrong: Callable[[FeedbackItem], bool], why: str
    ) -> None:
        bad = [{"loc": f"feedback[{i}].outcomeTimestamp", "msg": f"outcomeTimestamp {why}"}
               for i, item in enumerate(items) if wrong(item)]  # fmt: skip
        if bad:
            metrics.FEEDBACK_REFUSED.labels("timestamp").inc(len(bad))
            raise RequestInvalid("feedback with an impossible outcomeTimestamp", bad)


def _quota_key(client: Client) -> str:
    return f"{client.issuer}\n{client.tenant or ''}"


def build_quota(settings: Settings) -> Quota:
    """The feedback quota per client: shared through Redis when there is one."""
    limit, window = settings.feedback_quota_items, settings.feedback_quota_window_s
    if settings.redis_url:
        client = redis_client(settings.redis_url)
        return RedisQuota(client, settings.redis_prefix, "feedback items", limit, window)
    return MemoryQuota("feedback items", limit, window)


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
        engine,
        patient_key_secret(settings),
        migrated=not settings.migrate_on_start,
        cache_s=settings.suppression_cache_s,
    )
    if settings.migrate_on_start:
        try:
            store.migrate()
        except SQLAlchemyError as exc:
            log.error(
                "store not migrated at start-up; retried on first use",
                extra={"error": type(exc).__name__},
            )
    return FeedbackService(store, settings, build_quota(settings))
