"""No data lost (issue 6, point 6): feedback posted concurrently to the running server is
either stored (2xx, counted) or refused with 503 for the client to retry; never acknowledged
and lost, also when the connection pool is thrown away or the database goes away mid-run."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
import pytest
import requests
from flask import Flask

from cds_service.feedback.store import IssuedCards
from tests import builders as b
from tests.feedback.conftest import PG_ADMIN, Backend, iso, patient_view_body, terminate
from tests.live import serving

ITEMS = 2000
PER_POST = 10
CLIENTS = 8
DISRUPTED = 1200  # items posted while the store is disrupted


@dataclass
class Server:
    app: Flask
    base: str

    @property
    def engine(self):
        return self.app.extensions["rls_cds"].database


@pytest.fixture
def server(make_app) -> Iterator[Server]:
    """The app served over real HTTP (threaded werkzeug) on a free port."""
    app = make_app(log_level="CRITICAL")
    with serving(app) as base_url:
        yield Server(app, base_url)


def batches(server: Server, count: int = ITEMS) -> list[list[dict]]:
    """`count` distinct items (each about its own card, issued to the demo client by the
    patient-view service and recorded in the store), PER_POST to a POST."""
    cards = [str(uuid.uuid4()) for _ in range(count)]
    issued = IssuedCards(
        "rls-secondary-causes",
        str(uuid.uuid4()),
        "demo",
        None,
        "patient-key",
        b.NOW,
        [{"uuid": card, "source": {"topic": {"code": "iron-below-target"}}} for card in cards],
    )
    server.app.extensions["rls_cds"].feedback.store.record([issued])
    items = [
        {
            "card": card,
            "outcome": "overridden",
            "overrideReason": {"userComment": f"item {n}"},
            "outcomeTimestamp": iso(b.NOW),
        }
        for n, card in enumerate(cards)
    ]
    return [items[n : n + PER_POST] for n in range(0, count, PER_POST)]


@dataclass
class Tally:
    """What the clients were told."""

    acked: set[str] = field(default_factory=set)  # cards of items in 2xx answers
    refused: list[list[dict]] = field(default_factory=list)  # batches answered 503
    stored: int = 0  # sum of `stored` over 2xx answers
    already: int = 0
    other: list[tuple[int, str]] = field(default_factory=list)
    answers: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def post_all(
    base: str, work: list[list[dict]], tally: Tally, on_answer: Callable[[], None] = lambda: None
) -> None:
    local = threading.local()

    def post(batch: list[dict]) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        response = session.post(
            f"{base}/cds-services/rls-secondary-causes/feedback",
            json={"feedback": batch},
            timeout=60,
        )
        with tally.lock:
            tally.answers += 1
            if 200 <= response.status_code < 300:
                body = response.json()
                assert body["received"] == len(batch)
                tally.stored += body["stored"]
                tally.already += body["alreadyStored"]
                tally.acked.update(item["card"] for item in batch)
            elif response.status_code == 503:
                assert response.json()["error"] == "store-unavailable"
                assert response.headers["Retry-After"].isdigit()
                tally.refused.append(batch)
            else:
                tally.other.append((response.status_code, response.text[:200]))
        on_answer()

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(post, work))


def stored_cards(backend: Backend) -> list[str]:
    return [row["card_uuid"] for row in backend.rows("feedback")]


def test_thousands_of_items_posted_concurrently_are_all_counted(store_backend, server):
    tally = Tally()
    started = time.monotonic()
    post_all(server.base, batches(server), tally)
    elapsed = time.monotonic() - started
    assert tally.other == []
    assert tally.answers == ITEMS // PER_POST
    rows = stored_cards(store_backend)
    assert len(rows) == tally.stored  # the store holds exactly what 2xx answers counted
    assert set(rows) == tally.acked
    assert tally.refused == []  # a healthy store refuses nothing
    assert tally.stored == ITEMS and tally.already == 0
    assert elapsed < 30


def test_posting_everything_again_stores_nothing_new(store_backend, server):
    work = batches(server, 400)
    first, second = Tally(), Tally()
    post_all(server.base, work, first)
    post_all(server.base, work + work, second)  # and each batch twice at once
    assert (first.stored, second.stored, second.already) == (400, 0, 800)
    assert store_backend.count("feedback") == 400


def check_nothing_lost(backend: Backend, server: Server, tally: Tally, total: int) -> None:
    """2xx -> stored; 503 -> absent, or stored (commit outcome unknown) and reported as
    already stored on retry; after retrying every 503, everything is stored exactly once."""
    assert tally.other == [], tally.other[:3]
    rows = stored_cards(backend)
    assert len(rows) == len(set(rows))
    refused = {item["card"] for batch in tally.refused for item in batch}
    assert not refused & tally.acked
    assert tally.acked <= set(rows)  # nothing acknowledged is missing
    assert set(rows) <= tally.acked | refused
    phantom = set(rows) & refused  # committed, but the client was told to retry
    assert len(rows) == tally.stored + len(phantom)

    retry = Tally()
    post_all(server.base, tally.refused, retry)
    assert retry.refused == [] and retry.other == []
    assert retry.already == len(phantom)
    assert retry.stored == len(refused) - len(phantom)
    assert backend.count("feedback") == total == tally.stored + retry.stored + len(phantom)


def test_pool_disposed_and_connections_killed_mid_run(store_backend, server):
    """engine.dispose() every few milliseconds from another thread (PostgreSQL: also every
    session of the app terminated, pooled or mid-transaction) while clients post."""
    stop = threading.Event()
    disruptions = 0

    def disrupt() -> None:
        nonlocal disruptions
        while not stop.is_set():
            server.engine.dispose()
            if store_backend.database and disruptions % 5 == 0:
                terminate(store_backend.database)
            disruptions += 1
            time.sleep(0.005)

    work = batches(server, DISRUPTED)
    disruptor = threading.Thread(target=disrupt)
    disruptor.start()
    tally = Tally()
    try:
        post_all(server.base, work, tally)
    finally:
        stop.set()
        disruptor.join(10)
    assert disruptions > 10
    assert tally.stored > 0
    check_nothing_lost(store_backend, server, tally, DISRUPTED)


def test_database_goes_away_mid_run(store_backend, server):
    """PostgreSQL refuses connections and ends every session for a while; SQLite is locked
    exclusively by another process for longer than its busy timeout. Meanwhile clients post,
    and a hook is called: it still answers with its cards."""
    outage_started = threading.Event()
    outage_over = threading.Event()
    tally = Tally()
    answered_before = 20

    def maybe_start() -> None:
        if tally.answers >= answered_before and not outage_started.is_set():
            outage_started.set()

    def outage() -> None:
        outage_started.wait(60)
        if store_backend.database:
            name = store_backend.database
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                try:
                    terminate(name)
                    time.sleep(0.8)
                finally:
                    admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        else:
            path = store_backend.url.removeprefix("sqlite:///")
            locker = sqlite3.connect(path, isolation_level=None)
            try:
                locker.execute("BEGIN EXCLUSIVE")
                time.sleep(5.6)  # the driver waits 5 s for a lock, then gives up
                locker.execute("COMMIT")
            finally:
                locker.close()
        outage_over.set()

    hook_status: list[int] = []

    def call_hook_during_outage() -> None:
        outage_started.wait(60)
        time.sleep(0.1)
        response = requests.post(
            f"{server.base}/cds-services/rls-secondary-causes",
            json=patient_view_body(),
            timeout=60,
        )
        hook_status.append(response.status_code)
        hook_status.append(len(response.json()["cards"]))

    side = [threading.Thread(target=outage), threading.Thread(target=call_hook_during_outage)]
    for thread in side:
        thread.start()
    try:
        post_all(server.base, batches(server, DISRUPTED), tally, on_answer=maybe_start)
    finally:
        outage_started.set()
        for thread in side:
            thread.join(60)
    assert outage_over.is_set()
    assert hook_status == [200, 2]
    assert tally.refused, "the outage refused nothing: it did not overlap the posting"
    assert tally.stored > 0
    check_nothing_lost(store_backend, server, tally, DISRUPTED)
