"""A FHIR pool too small for one hook's queries is said at start-up.

The P2 benchmark ran with a pool of 8, so one server's share was 4, below the 5 queries of
its hook: every call fetched in two rounds and the benchmark reported the bulkheads as
costing 50 ms. The default pool leaves one server room for a whole hook; a smaller one is
allowed but must not go unnoticed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.settings import Settings


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings() -> Iterator[_Lines]:
    lines = _Lines()
    logger = logging.getLogger("cds_service.app")
    logger.addHandler(lines)
    try:
        yield lines
    finally:
        logger.removeHandler(lines)


def _shares_said(messages: list[str]) -> list[str]:
    return [m for m in messages if "fetch in rounds" in m]


def test_the_default_pool_gives_one_server_room_for_a_whole_hook(tmp_path: Path, warnings):
    app = create_app(Settings(demo=True, log_level="WARNING", data_dir=tmp_path))
    access = app.extensions["rls_cds"].evaluator._fhir
    queries = max(len(s.prefetch) for s in app.extensions["rls_cds"].services.values())
    assert access.bulkheads.shares.server >= queries
    assert _shares_said(warnings.messages) == []


def test_a_pool_too_small_for_one_hook_is_said_at_start_up(tmp_path: Path, warnings):
    create_app(Settings(demo=True, log_level="WARNING", data_dir=tmp_path, fhir_max_parallel=8))
    (said,) = _shares_said(warnings.messages)
    assert "4 fetches at once, fewer than one hook's 10 queries" in said
