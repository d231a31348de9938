"""A store that is slow or silent must not hold a hook past its deadline: the hook answers
with its cards (nothing suppressed) within `hook_deadline_s`, and start-up is not blocked."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cds_service.app import create_app
from cds_service.settings import Settings
from tests import builders as b
from tests.feedback.conftest import PATIENT_VIEW, SECRET, patient_view_body, post_json

DEADLINE_S = 2.5  # Settings.hook_deadline_s default
MARGIN_S = 0.5
START_UP_S = 5


class SilentServer:
    """Accepts TCP connections and never says a word (a database host gone quiet)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def timed(action: Callable[[], Any], limit_s: float, unblock: Callable[[], None]) -> tuple:
    """(seconds taken or None when over `limit_s`, result); `unblock` frees a stuck action."""
    result: list[Any] = []
    started = time.monotonic()
    worker = threading.Thread(target=lambda: result.append(action()), daemon=True)
    worker.start()
    worker.join(limit_s)
    taken = time.monotonic() - started if not worker.is_alive() else None
    unblock()
    worker.join(30)
    return taken, (result[0] if result else None)


def silent_settings(server: SilentServer, tmp_path, **overrides: Any) -> Settings:
    return Settings(
        demo=True,
        data_dir=tmp_path,
        database_url=f"postgresql://postgres@127.0.0.1:{server.port}/gone",
        patient_key_secret=SECRET,
        log_level="CRITICAL",
        **overrides,
    )


def test_a_silent_postgresql_does_not_block_start_up(silent_server, tmp_path):
    """README: a database that is down at start-up does not stop the service."""
    settings = silent_settings(silent_server, tmp_path)
    taken, app = timed(lambda: create_app(settings), START_UP_S, silent_server.close)
    assert taken is not None, f"create_app waited on a silent database for over {START_UP_S} s"
    assert app is not None


def test_a_silent_postgresql_does_not_hold_a_hook_past_its_deadline(silent_server, tmp_path):
    settings = silent_settings(silent_server, tmp_path, migrate_on_start=False)
    client = create_app(settings, clock=lambda: b.NOW).test_client()
    taken, response = timed(
        lambda: post_json(client, PATIENT_VIEW, patient_view_body()),
        DEADLINE_S + MARGIN_S,
        silent_server.close,
    )
    assert taken is not None, "the hook waited on a silent database past its deadline"
    assert response.status_code == 200
    assert len(response.get_json()["cards"]) == 2


def test_a_locked_sqlite_store_does_not_hold_a_hook_past_its_deadline(tmp_path):
    settings = Settings(
        demo=True, data_dir=tmp_path, patient_key_secret=SECRET, log_level="CRITICAL"
    )
    app = create_app(settings, clock=lambda: b.NOW)
    client = app.test_client()
    assert post_json(client, PATIENT_VIEW, patient_view_body()).status_code == 200
    locker = sqlite3.connect(tmp_path / "rls-cds.sqlite3", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process writing (or a backup) holds the file
    try:
        started = time.monotonic()
        response = post_json(client, PATIENT_VIEW, patient_view_body())
        taken = time.monotonic() - started
    finally:
        locker.execute("COMMIT")
        locker.close()
        app.extensions["rls_cds"].feedback.recorder.flush()
        app.extensions["rls_cds"].database.dispose()
    assert response.status_code == 200
    assert len(response.get_json()["cards"]) == 2
    assert taken < DEADLINE_S + MARGIN_S, f"the hook took {taken:.1f} s"
