"""A Redis that drips its answers cannot hold a hook, a feedback post or /readyz.

The client's socket timeout (0.5 s) bounds each read, not a whole answer: a server that
sends a byte every 0.2 s keeps a command alive for as long as it likes (a broken proxy, a
half-dead replica). The fake below answers every command with the header of a long bulk
string and then one byte every 0.2 s, for as long as the connection lasts. Every Redis
command the service sends is bounded as a whole, so each call answers within its budget:
the hook and feedback 503 (fail closed), /readyz 503 with the replay check false, the
start-up mark given up with a warning.
Each step is given 10 s (a thread joined with a timeout, the HTTP client's timeout): a call
still dripping then fails the test instead of hanging it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from cds_service.auth.replay import redis_client
from tests import builders as b
from tests.security.conftest import HOOK_PATH, LOCAL

DRIP_S, PATIENCE_S = 0.2, 10.0


class _DrippingRedis:
    """Accepts connections on a free port; answers each command by dripping."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self.commands = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        with connection:
            try:
                while connection.recv(65536) and not self._stop.is_set():
                    self.commands += 1
                    connection.sendall(b"$100000\r\n")
                    while not self._stop.wait(DRIP_S):
                        connection.sendall(b"x")
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


@pytest.fixture
def dripping() -> Iterator[_DrippingRedis]:
    server = _DrippingRedis()
    try:
        yield server
    finally:
        server.close()


def _within_patience(function: Callable[[], Any]) -> Any:
    """`function()`'s result (or exception), or a failure if it is still running after
    PATIENCE_S (its thread is a daemon and is left behind)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(function())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(PATIENCE_S)
    assert outcome, f"still waiting on the dripping Redis after {PATIENCE_S} s"
    return outcome[0]


def test_a_command_is_bounded_as_a_whole(dripping):
    outcome = _within_patience(redis_client(dripping.url).ping)
    assert isinstance(outcome, redis.TimeoutError)
    assert dripping.commands == 1


def test_the_hook_and_readiness_answer_while_redis_drips(make_app, serve, es384, dripping):
    app = _within_patience(lambda: make_app(redis_url=dripping.url))  # the start-up mark
    live = serve(app)
    live.http.request = _bounded(live.http.request)
    hook = live.hook(es384.token())
    assert hook.status_code == 503
    assert hook.json()["error"] == "replay-store-unavailable"
    assert hook.headers["Retry-After"]
    ready = live.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["replay"] is False
    assert ready.headers["Retry-After"]
    item = {"card": "c", "outcome": "overridden", "outcomeTimestamp": b.NOW.isoformat()}
    feedback = live.post(
        HOOK_PATH + "/feedback",
        {"feedback": [item]},
        es384.token(aud=LOCAL + HOOK_PATH + "/feedback"),
    )
    assert feedback.status_code == 503
    assert feedback.json()["error"] == "replay-store-unavailable"


def _bounded(request):  # the Live session waits 60 s; this test allows 10 s per call
    def call(method, url, **kwargs):
        kwargs["timeout"] = PATIENCE_S
        return request(method, url, **kwargs)

    return call
