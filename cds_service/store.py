"""The service's database (SQLite file by default, PostgreSQL with DATABASE_URL).

The feedback store (cds_service/feedback) builds on this engine; readiness checks it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from cds_service.settings import Settings

#: libpq's connect timeout (its least: 2 s).
CONNECT_TIMEOUT_S = 2
#: Least time sent data may stay unacknowledged before a connection is dropped.
TCP_USER_TIMEOUT_MS = 10_000


def in_memory(url: str) -> bool:
    """Whether the database URL names an in-memory SQLite database (gone with the process)."""
    return url in ("sqlite://", "sqlite:///:memory:")


def make_engine(settings: Settings) -> Engine:
    """An engine for the configured database; creates the SQLite directory when needed.

    An in-memory SQLite database (``sqlite://``, tests and one-shot commands) exists once per
    connection, so all threads share one connection to it.
    """
    url = settings.effective_database_url
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if in_memory(url):
        return create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    # A database that is down or silent must not hold a hook or the start-up: connecting
    # gives up after 2 s (libpq's least timeout), a pooled connection is waited for at most
    # the store timeout. SQLite writers wait that long for each other; hooks only read, and
    # in WAL mode readers never wait for a lock.
    if not url.startswith("sqlite:"):
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_timeout=settings.store_timeout_s,
            connect_args=postgresql_options(settings.store_timeout_s),
        )
    engine = create_engine(
        url,
        pool_timeout=settings.store_timeout_s,
        connect_args={"timeout": settings.store_timeout_s},
    )
    event.listen(engine, "connect", _sqlite_wal)
    return engine


def postgresql_options(timeout_s: float) -> dict[str, Any]:
    """libpq connection options that bound every wait the server or the network can cause.

    The server cancels a statement running (``statement_timeout``) or waiting for a lock
    (``lock_timeout``) longer than the store timeout. TCP keepalives find a peer gone silent
    on an idle pooled connection within about 10 + 3 x 3 s, and ``tcp_user_timeout`` drops
    a connection whose sent data stays unacknowledged that long (a partition). A server that
    is frozen but whose host still acknowledges TCP defeats all of these: for that the
    callers wait within budgets of their own (cds_service.bounded)."""
    timeout_ms = max(1, round(timeout_s * 1000))
    return {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "options": f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 3,
        "keepalives_count": 3,
        "tcp_user_timeout": max(timeout_ms, TCP_USER_TIMEOUT_MS),
    }


def _sqlite_wal(connection: Any, _record: Any) -> None:
    """Write-ahead logging: hooks reading suppressions do not wait for the card recorder's
    writes, and each commit is one fsync less (a crash can lose the last commit, never
    corrupt the file)."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def reachable(engine: Engine) -> bool:
    """True when a trivial query succeeds."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True
