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
    # gives up after 2 s (libpq's least timeout). SQLite writers wait up to 5 s for each
    # other; hooks only read, and in WAL mode readers never wait for a lock.
    if not url.startswith("sqlite:"):
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 2})
    engine = create_engine(url, connect_args={"timeout": 5})
    event.listen(engine, "connect", _sqlite_wal)
    return engine


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
