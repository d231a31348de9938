"""H1 (SQLite), H2 (PostgreSQL): a hook's store work costs the same on day 1000 as on day 1.

Measured in this process, on the service's own store: per call, what a patient-view hook
asks of it (``FeedbackStore.suppressed`` with the service's reasons and window, the
per-worker memory of "nothing suppressed" off so that every call reads the store) and what
its card recorder then writes (``FeedbackStore.record`` of one answer of two cards with a
suggestion each). The hand-over of the read to a bounded worker thread (cds_service.bounded)
is left out: it costs the same whatever the store holds, and its scheduling noise on a
loaded machine would hide what does depend on it.

Three stores side by side, measured in turn within each round: an empty one; one where a
single patient has `hot_cards` issued cards (feedback on one in twenty); one with
`patients` patients of 10 cards each. The figures are the median over the rounds of each
filled store's time per call against the empty store's. H1r/H2r time the read alone (what
the request thread waits for) for the patient with `hot_cards` cards against the same
patient, with the same three suppression rows, and 60 cards of history.
"""

from __future__ import annotations

import statistics
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import cycle

import psycopg

from benchmarks import store_fill
from benchmarks.report import Result, timed
from benchmarks.server import _private_postgres
from cds_service.auth.model import PatientScope
from cds_service.feedback.store import FeedbackStore, IssuedCards
from cds_service.hooks.services import PATIENT_VIEW
from cds_service.knowledge import OVERRIDE_REASON_SYSTEM
from cds_service.settings import Settings

FLAT_TARGET = 1.10
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECRET = b"benchmark-secret"
HOT = "hot-patient"
QUERIED = ("iron-below-target", "sedating-antihistamine")


def _call(
    store: FeedbackStore, patients: Iterator[str], record: bool = True
) -> Callable[[], object]:
    """One hook's store work for the next patient (without `record`: its read alone)."""
    settings = Settings(demo=True)
    since = NOW - timedelta(days=settings.suppression_days)
    reasons = settings.suppressing_reasons

    def call() -> None:
        patient = PatientScope("demo", None, None, next(patients))
        store.suppressed(patient, QUERIED, reasons, OVERRIDE_REASON_SYSTEM, since, PATIENT_VIEW)
        if not record:
            return
        cards = [
            {
                "uuid": str(uuid.uuid4()),
                "source": {"topic": {"code": topic}},
                "suggestions": [{"uuid": str(uuid.uuid4())}],
            }
            for topic in QUERIED
        ]
        key = store.patient_key(patient)
        store.record(
            [IssuedCards(store_fill.SERVICE, str(uuid.uuid4()), "demo", None, key, NOW, cards)]
        )

    return call


def measure(
    urls: dict[str, str], hot_cards: int, patients: int, rounds: int, count: int
) -> dict[str, float]:
    """Seconds per call on each store ('empty', 'hot', 'many'), median over the rounds."""
    stores = {name: store_fill.migrated_store(url, SECRET) for name, url in urls.items()}
    store_fill.fill(stores["hot"], [HOT], hot_cards)
    # The same patient with the same overrides (one per topic: three suppression rows) and
    # 60 cards of history: the read's baseline, so that only the history differs.
    store_fill.fill(stores["short"], [HOT], min(60, hot_cards))
    many = [f"patient-{n}" for n in range(patients)]
    store_fill.fill(stores["many"], many, 10)
    fresh = [f"new-patient-{n}" for n in range(1000)]
    calls = {
        "empty": _call(stores["empty"], cycle(fresh)),
        "hot": _call(stores["hot"], cycle([HOT])),
        "many": _call(stores["many"], cycle(many[::7])),
        # What the request thread waits for (the recording happens on the recorder's own).
        "short read": _call(stores["short"], cycle([HOT]), record=False),
        "hot read": _call(stores["hot"], cycle([HOT]), record=False),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm-up: pools, compiled statements, page cache
        timed(call, max(1, count // 4))
    order = list(calls)
    for round_ in range(rounds):  # each store first in turn: no order favours one
        for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
            times[name].append(timed(calls[name], count))
    for store in stores.values():
        store.engine.dispose()
    return {name: statistics.median(values) for name, values in times.items()}


def _results(key: str, where: str, seconds: dict[str, float], hot: int, patients: int):
    hot_ratio = seconds["hot"] / seconds["empty"]
    many_ratio = seconds["many"] / seconds["empty"]
    read_ratio = seconds["hot read"] / seconds["short read"]
    notes = [
        f"Per call on {where}: the suppression read of a patient-view hook (the per-worker",
        "memory off) and the recording of one answer of two cards, on the service's store.",
        "Median over rounds, the three stores measured in turn each round.",
        f"Empty store {seconds['empty'] * 1e3:.2f} ms per call; one patient with {hot:,}",
        f"issued cards {seconds['hot'] * 1e3:.2f} ms; {patients:,} patients of 10 cards",
        f"{seconds['many'] * 1e3:.2f} ms. Filled stores carry an override on one card in 20.",
    ]
    return [
        Result(
            key,
            f"hook store work, one patient with {hot:,} cards vs an empty store ({where})",
            f"{hot_ratio:.2f}x",
            f"<= {FLAT_TARGET:.2f}x",
            hot_ratio <= FLAT_TARGET,
            notes,
        ),
        Result(
            f"{key}p",
            f"hook store work across {patients:,} patients vs an empty store ({where})",
            f"{many_ratio:.2f}x",
            f"<= {FLAT_TARGET:.2f}x",
            many_ratio <= FLAT_TARGET,
            [f"As {key}, for patients of a store of {patients:,} (every 7th, in turn)."],
        ),
        Result(
            f"{key}r",
            f"suppression read alone, one patient with {hot:,} cards vs 60 ({where})",
            f"{read_ratio:.2f}x",
            f"<= {FLAT_TARGET:.2f}x",
            read_ratio <= FLAT_TARGET,
            [
                f"As {key} without the recording of the cards (which the recorder thread does",
                "off the request): what a hook waits for, against the same patient with the",
                "same overrides (three suppression rows) and 60 cards of history:",
                f"{seconds['short read'] * 1e3:.3f} ms vs {seconds['hot read'] * 1e3:.3f} ms.",
            ],
        ),
    ]


@contextmanager
def _pg_databases(names: list[str]) -> Iterator[dict[str, str] | None]:
    """Databases on a private PostgreSQL server of this run (never the machine's own)."""
    with _private_postgres() as url:
        if url is None:
            yield None
            return
        with psycopg.connect(url, autocommit=True) as admin:
            for name in names:
                admin.execute(f'CREATE DATABASE "{name}"')
        base = url.rsplit("/", 1)[0]
        yield {name: f"{base}/{name}" for name in names}


def run(
    hot_cards: int = 100_000, patients: int = 10_000, rounds: int = 7, count: int = 200
) -> list[Result]:
    names = ["empty", "hot", "many", "short"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = {name: f"sqlite:///{tmp}/{name}.sqlite3" for name in names}
        seconds = measure(urls, hot_cards, patients, rounds, count)
        results += _results("H1", "SQLite", seconds, hot_cards, patients)
        with _pg_databases(names) as pg_urls:
            if pg_urls is None:
                results.append(
                    Result("H2", "as H1 on PostgreSQL", "not run", "-", None, ["no server"])
                )
            else:
                seconds = measure(pg_urls, hot_cards, patients, rounds, count)
                results += _results("H2", "PostgreSQL", seconds, hot_cards, patients)
    return results
