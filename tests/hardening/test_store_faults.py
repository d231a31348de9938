"""Store faults (issue 10, point 5): PostgreSQL and Redis go away mid-run and come back.

A small TCP proxy on 127.0.0.1 stands in front of the machine's PostgreSQL (and Redis); the
app (served by werkzeug in a thread, over real HTTP) only knows the proxy's port. Stopping the
proxy closes every connection through it and then either refuses new ones (nothing listens:
the database host is down) or accepts and drops them at once (a server restarting). Started
again on the same port, the database is back: the same app, never restarted, must recover.

PostgreSQL down: hooks answer 200 with their cards (the card index write fails in the
background, counted), feedback answers 503 (never 200 for items not stored); back: feedback
is stored, new cards recorded, suppression works again.
Redis down in JWT mode: a valid token gets 503 (fail closed), an invalid one still 401; back:
valid tokens pass and a replay is refused again.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
import redis
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text

import cds_service.feedback
from cds_service.app import create_app
from cds_service.settings import Settings
from tests import builders as b
from tests.feedback.conftest import (
    PG_ADMIN,
    SECRET,
    iso,
    order_sign_body,
    overridden,
    patient_view_body,
    terminate,
)
from tests.hardening.conftest import FHIR, ISS, Client
from tests.live import serving

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
PATIENT_VIEW = "/cds-services/rls-secondary-causes"
#: The service's public base URL: tokens name it, whatever port a test serves on.
PUBLIC = "https://cds.example.test"
ORDER_SIGN = "/cds-services/rls-order-sign"
#: A hook answers within its deadline (2.5 s) even while a store is down; some slack.
HOOK_BOUND_S = 3.0


# --- the proxy ----------------------------------------------------------------------------


class Proxy:
    """TCP proxy 127.0.0.1:<port> -> upstream that can be taken down and brought back on the
    same port. Down: every open connection is closed, and new ones are refused (``refuse``:
    the listening socket is closed) or accepted and closed at once (``reset``)."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = 0
        self.mode = "up"
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        # SO_REUSEADDR (create_server's default): the port is free again at once.
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self.mode = "up"
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def stop(self, mode: str = "refuse") -> None:
        assert mode in ("refuse", "reset")
        self.mode = mode
        if mode == "refuse":
            self._close_listener()
        self._close_all()

    def resume(self) -> None:
        """Back up on the same port."""
        if self._listener is None:
            self.start()
        self.mode = "up"

    def close(self) -> None:
        self._close_listener()
        self._close_all()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _shut(sock)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                downstream, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if self.mode != "up":
                _shut(downstream)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                _shut(downstream)
                continue
            upstream.settimeout(None)
            downstream.settimeout(None)
            with self._lock:
                self._open |= {downstream, upstream}
            for source, target in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {source, target}
            _shut(source)
            _shut(target)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def pg_proxy() -> Iterator[Proxy]:
    proxy = Proxy(PG)
    proxy.start()
    yield proxy
    proxy.close()


@pytest.fixture
def redis_proxy() -> Iterator[Proxy]:
    proxy = Proxy(REDIS)
    proxy.start()
    yield proxy
    proxy.close()


# --- the stores -----------------------------------------------------------------------------


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A database of this test alone, dropped after it (named like tests/feedback's, so that a
    session killed before the drop has it dropped by the next one)."""
    name = f"rls_cds_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    terminate(name)
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def direct_sql(pg_database: str) -> Iterator[Any]:
    """Counts read straight from PostgreSQL (not through the proxy)."""
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_database}")

    def count(table: str, where: str = "true", **params: Any) -> int:
        with engine.connect() as connection:
            query = text(f"SELECT count(*) FROM {table} WHERE {where}")
            return int(connection.execute(query, params).scalar_one())

    yield count
    engine.dispose()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test alone on the machine's Redis; its keys are deleted after."""
    prefix = f"rls-cds-test-{uuid.uuid4().hex}"
    yield prefix
    connection = redis.Redis(*REDIS)
    keys = list(connection.scan_iter(match=f"{prefix}:*"))
    if keys:
        connection.delete(*keys)
    connection.close()


# --- the app over HTTP ----------------------------------------------------------------------


@dataclass
class Served:
    app: Flask
    base: str
    http: requests.Session
    last_s: float = 0.0  # how long the last POST took

    def post(self, path: str, body: Any, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started = time.monotonic()
        response = self.http.post(self.base + path, json=body, headers=headers, timeout=30)
        self.last_s = time.monotonic() - started
        return response

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.base + path, timeout=30)

    @property
    def recorder(self):
        return self.app.extensions["rls_cds"].feedback.recorder

    def flush(self) -> None:
        assert self.recorder.flush(10)


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serve apps by werkzeug (threaded) on free ports; all shut down after the test."""
    running: list[Served] = []
    with ExitStack() as servers:

        def start(app: Flask) -> Served:
            served = Served(app, servers.enter_context(serving(app)), requests.Session())
            running.append(served)
            return served

        yield start
        for served in running:
            served.http.close()
    for served in running:  # once the servers are down
        served.recorder.flush(10)
        served.app.extensions["rls_cds"].database.dispose()


def store_failures(operation: str) -> float:
    return REGISTRY.get_sample_value("rls_cds_store_failures_total", {"operation": operation}) or 0


def cards(response: requests.Response) -> dict[str, dict]:
    assert response.status_code == 200, response.text[:300]
    return {card["source"]["topic"]["code"]: card for card in response.json()["cards"]}


def accepted(card: dict) -> dict:
    return {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": iso(b.NOW),
    }


def feedback(items: list[dict]) -> dict:
    return {"feedback": items}


def assert_refused_503(response: requests.Response, error: str) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.json()["error"] == error
    assert response.headers["Retry-After"] == "5"


# --- PostgreSQL -----------------------------------------------------------------------------


def pg_app(tmp_path: Path, database: str, proxy: Proxy) -> Flask:
    settings = Settings(
        demo=True,
        data_dir=tmp_path,
        database_url=f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}",
        patient_key_secret=SECRET,
        log_level="CRITICAL",
    )
    return create_app(settings, clock=lambda: b.NOW)


@pytest.fixture
def quick_retry(monkeypatch) -> float:
    """After a failed suppression check the service skips the check for a while (30 s);
    here for a fraction of a second, so that the test sees it come back."""
    monkeypatch.setattr(cds_service.feedback, "RETRY_AFTER_FAILURE_S", 0.3)
    return 0.3


@pytest.mark.postgres
@pytest.mark.parametrize("outage", ["refuse", "reset"])
def test_postgresql_down_mid_run_and_back(
    outage, tmp_path, pg_database, direct_sql, pg_proxy, serve, quick_retry
):
    service = serve(pg_app(tmp_path, pg_database, pg_proxy))
    runtime = service.app.extensions["rls_cds"]

    # Up: cards recorded, feedback stored.
    before = cards(service.post(PATIENT_VIEW, patient_view_body("before")))
    service.flush()
    assert direct_sql("issued_card") == len(before) == 2
    answer = service.post(
        PATIENT_VIEW + "/feedback", feedback([accepted(before["iron-below-target"])])
    )
    assert answer.status_code == 200 and answer.json()["stored"] == 1
    assert service.get("/readyz").status_code == 200

    # Down (every pooled connection closed with it).
    failed, metric = service.recorder.failed, store_failures("record-cards")
    refused_metric = store_failures("feedback")
    recorded = service.recorder.recorded
    assert pg_proxy.accepted > 0  # the app reaches PostgreSQL through the proxy only
    attempts = pg_proxy.accepted
    pg_proxy.stop(outage)

    during = cards(service.post(PATIENT_VIEW, patient_view_body("during")))
    assert set(during) == {"iron-below-target", "sedating-antihistamine"}
    assert service.last_s < HOOK_BOUND_S
    assert runtime.feedback.suppression_failures >= 1  # asked, failed, nothing suppressed
    signed = cards(service.post(ORDER_SIGN, order_sign_body("during")))
    assert set(signed) == {"sedating-antihistamine"}
    assert service.last_s < HOOK_BOUND_S
    service.flush()
    assert service.recorder.failed - failed == 2  # both answers' cards, not recorded
    assert service.recorder.recorded == recorded
    assert store_failures("record-cards") - metric >= 1  # one per failed write (a batch)

    items = [
        overridden(during["iron-below-target"]["uuid"], "already-addressed"),
        accepted(during["sedating-antihistamine"]),
        accepted(signed["sedating-antihistamine"]),
    ]
    for _ in range(3):  # the client retries; still nothing acknowledged
        refused = service.post(PATIENT_VIEW + "/feedback", feedback(items))
        assert_refused_503(refused, "store-unavailable")
        assert service.last_s < HOOK_BOUND_S
    assert store_failures("feedback") - refused_metric == 3
    ready = service.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["store"] is False
    assert direct_sql("feedback") == 1  # nothing of the refused items is in the store
    if outage == "reset":
        assert pg_proxy.accepted > attempts  # it tried to connect, and was dropped

    # Back, same app.
    pg_proxy.resume()
    time.sleep(quick_retry + 0.1)  # past the skip window of the failed suppression check
    assert service.get("/readyz").status_code == 200
    # The cards answered during the outage were never recorded: their feedback, retried
    # now, is refused (404, naming each item) and nothing of it is stored.
    retried = service.post(PATIENT_VIEW + "/feedback", feedback(items))
    assert retried.status_code == 404, retried.text[:300]
    assert [d["loc"] for d in retried.json()["details"]] == [
        f"feedback[{n}].card" for n in range(3)
    ]
    assert direct_sql("feedback") == 1
    late = service.post(
        PATIENT_VIEW + "/feedback",
        feedback([overridden(before["sedating-antihistamine"]["uuid"], None)]),
    )
    assert late.status_code == 200 and late.json()["stored"] == 1
    assert direct_sql("feedback") == 2

    after = cards(service.post(PATIENT_VIEW, patient_view_body("after")))
    service.flush()
    assert service.recorder.recorded == recorded + 1
    for card in after.values():
        assert direct_sql("issued_card", "card_uuid = :u", u=card["uuid"]) == 1
    # Suppression asks the store again: an override as already handled hides that topic.
    handled = overridden(after["iron-below-target"]["uuid"], "already-addressed")
    assert service.post(PATIENT_VIEW + "/feedback", feedback([handled])).status_code == 200
    checks = runtime.feedback.suppression_failures
    again = cards(service.post(PATIENT_VIEW, patient_view_body("after")))
    assert set(again) == {"sedating-antihistamine"}
    assert runtime.feedback.suppression_failures == checks
    # The card issued during the outage was never recorded: nothing can suppress it.
    assert direct_sql("issued_card", "card_uuid = :u", u=during["iron-below-target"]["uuid"]) == 0
    assert set(cards(service.post(PATIENT_VIEW, patient_view_body("during")))) == set(during)


@pytest.mark.postgres
def test_postgresql_down_at_start_up_and_back(
    tmp_path, pg_database, direct_sql, pg_proxy, serve, quick_retry
):
    """The app starts while the database is down (migration fails), serves hooks, refuses
    feedback; the database comes up: migrated on first use, everything stored."""
    pg_proxy.stop("refuse")
    service = serve(pg_app(tmp_path, pg_database, pg_proxy))
    during = cards(service.post(PATIENT_VIEW, patient_view_body("start")))
    assert service.last_s < HOOK_BOUND_S
    item = accepted(during["iron-below-target"])
    assert_refused_503(
        service.post(PATIENT_VIEW + "/feedback", feedback([item])), "store-unavailable"
    )
    service.flush()
    assert service.recorder.failed == 1

    pg_proxy.resume()
    time.sleep(quick_retry + 0.1)
    unrecorded = service.post(PATIENT_VIEW + "/feedback", feedback([item]))
    assert unrecorded.status_code == 404  # its card was answered while the store was down
    after = cards(service.post(PATIENT_VIEW, patient_view_body("start")))
    service.flush()
    assert service.recorder.recorded == 1
    assert direct_sql("issued_card") == len(after) == 2
    stored = service.post(
        PATIENT_VIEW + "/feedback", feedback([accepted(after["iron-below-target"])])
    )
    assert stored.status_code == 200 and stored.json()["stored"] == 1
    assert direct_sql("feedback") == 1
    assert service.get("/readyz").status_code == 200


@pytest.mark.postgres
def test_postgresql_flapping_under_traffic(
    tmp_path, pg_database, direct_sql, pg_proxy, serve, quick_retry
):
    """The database goes down and up five times while hooks and feedback keep coming: every
    hook answers 200, every feedback answer is 200 (stored) or 503 (not acknowledged), and
    at the end the store holds exactly what 200s acknowledged."""
    service = serve(pg_app(tmp_path, pg_database, pg_proxy))
    acknowledged, refused, statuses = 0, 0, []
    for round_ in range(10):
        if round_ % 2:
            pg_proxy.stop("refuse" if round_ % 4 == 1 else "reset")
        else:
            pg_proxy.resume()
        for n in range(4):
            patient = f"flap-{round_}-{n}"
            hook = service.post(PATIENT_VIEW, patient_view_body(patient))
            statuses.append(hook.status_code)
            assert service.last_s < HOOK_BOUND_S
            got = cards(hook)
            items = [accepted(card) for card in got.values() if card.get("suggestions")]
            answer = service.post(PATIENT_VIEW + "/feedback", feedback(items))
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                acknowledged += answer.json()["stored"]
            else:  # the store is down, or its card is still being recorded: retry later
                assert answer.status_code == 503, answer.text[:300]
                assert answer.json()["error"] in {"store-unavailable", "cards-not-recorded-yet"}
                assert answer.headers["Retry-After"].isdigit()
                refused += 1
    pg_proxy.resume()
    service.flush()
    assert set(statuses) == {200, 503}
    assert acknowledged > 0 and refused > 0
    assert direct_sql("feedback") == acknowledged
    time.sleep(quick_retry + 0.1)
    assert service.get("/readyz").status_code == 200
    fresh = cards(service.post(PATIENT_VIEW, patient_view_body("flap-last")))
    last = service.post(
        PATIENT_VIEW + "/feedback", feedback([overridden(fresh["iron-below-target"]["uuid"], None)])
    )
    assert last.status_code == 200 and last.json()["stored"] == 1


# --- Redis (JWT mode) -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stranger() -> Client:
    """Somebody else's key under the trusted key's kid: a token that must be refused."""
    return Client(ec.generate_private_key(ec.SECP384R1()))


def jwt_app(tmp_path: Path, ehr: Client, proxy: Proxy, prefix: str) -> Flask:
    clients = tmp_path / "trusted-clients.json"
    entry = {"iss": ISS, "jwks": {"keys": [ehr.jwk()]}, "fhir_servers": [FHIR]}
    clients.write_text(json.dumps([entry]), "utf-8")
    settings = Settings(
        demo=False,
        trusted_clients=clients,
        data_dir=tmp_path,
        redis_url=f"redis://127.0.0.1:{proxy.port}/0",
        redis_prefix=prefix,
        log_level="CRITICAL",
        public_base_url=PUBLIC,
    )
    return create_app(settings, clock=lambda: b.NOW)


def replay_keys(prefix: str) -> int:
    """Token records under the prefix (one sorted set per issuer)."""
    connection = redis.Redis(*REDIS)
    try:
        return sum(connection.zcard(key) for key in connection.scan_iter(match=f"{prefix}:jti:*"))
    finally:
        connection.close()


@pytest.mark.parametrize("outage", ["refuse", "reset"])
def test_redis_down_fails_closed_and_recovers(
    outage, tmp_path, ehr, stranger, redis_proxy, redis_prefix, serve
):
    service = serve(jwt_app(tmp_path, ehr, redis_proxy, redis_prefix))
    url = PUBLIC + PATIENT_VIEW
    body = b.hook_request()

    def call(token: str | None, path: str = PATIENT_VIEW, payload: Any = body):
        return service.post(path, payload, token)

    # Up: a token passes once.
    token = ehr.token(url)
    assert call(token).status_code == 200
    assert call(token).status_code == 401  # replay
    assert replay_keys(redis_prefix) == 1
    assert service.get("/readyz").status_code == 200

    assert redis_proxy.accepted > 0
    attempts = redis_proxy.accepted
    redis_proxy.stop(outage)
    held = ehr.token(url)
    assert_refused_503(call(held), "replay-store-unavailable")
    assert service.last_s < HOOK_BOUND_S
    assert_refused_503(call(held), "replay-store-unavailable")  # the client retries
    assert call(token).status_code == 503  # not even an old one is let through unchecked
    # Invalid tokens are refused as before: 401, not 503.
    assert call(stranger.token(url)).status_code == 401
    assert call(ehr.token(PUBLIC + "/elsewhere")).status_code == 401
    assert call("not-a-token").status_code == 401
    assert call(None).status_code == 401
    answer = call(ehr.token(url + "/feedback"), PATIENT_VIEW + "/feedback", feedback([]))
    assert_refused_503(answer, "replay-store-unavailable")
    ready = service.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["replay"] is False
    assert replay_keys(redis_prefix) == 1
    if outage == "reset":
        assert redis_proxy.accepted > attempts

    # Back, same app.
    redis_proxy.resume()
    assert service.get("/readyz").status_code == 200
    fresh = ehr.token(url)
    assert call(fresh).status_code == 200
    assert call(fresh).status_code == 401  # replay refused again
    assert call(token).status_code == 401  # and the one recorded before the outage
    # The token refused with 503 was never accepted, so its retry is its first use.
    assert call(held).status_code == 200
    assert call(held).status_code == 401
    assert call(stranger.token(url)).status_code == 401
    assert replay_keys(redis_prefix) == 3


def test_a_token_accepted_before_an_outage_is_still_refused_after_it(
    tmp_path, ehr, redis_proxy, redis_prefix, serve
):
    """Replay protection outlives an outage of Redis and of the app's connections: the record
    is in Redis, not in the app; a second app on the same Redis refuses it too."""
    first = serve(jwt_app(tmp_path, ehr, redis_proxy, redis_prefix))
    token = ehr.token(PUBLIC + PATIENT_VIEW)
    assert first.post(PATIENT_VIEW, b.hook_request(), token).status_code == 200
    redis_proxy.stop("refuse")
    redis_proxy.resume()
    assert first.post(PATIENT_VIEW, b.hook_request(), token).status_code == 401
    second = serve(jwt_app(tmp_path, ehr, redis_proxy, redis_prefix))
    moved = jwt.decode(token, options={"verify_signature": False})
    # The same jti in a fresh token, presented to another instance: refused there too.
    again = ehr.token(PUBLIC + PATIENT_VIEW)
    claims = jwt.decode(again, options={"verify_signature": False}) | {"jti": moved["jti"]}
    replayed = jwt.encode(claims, ehr.key, algorithm="ES384", headers={"kid": ehr.kid})
    assert second.post(PATIENT_VIEW, b.hook_request(), replayed).status_code == 401
