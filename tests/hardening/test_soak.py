"""Soak (issue 10, point 6), the short variant: gunicorn with two workers over a SQLite file,
a bounded load (10 s or 20 000 hook calls, 127.0.0.1, 4 client threads) of mixed hooks and
feedback: no 5xx, no feedback lost, the same workers throughout, memory stable.

The long variant (2 minutes on SQLite, 1 on PostgreSQL) is ``python -m benchmarks --only
SOAK`` (part of ``make bench``); it writes its figures to BENCHMARKS.md. See benchmarks/soak.py.
"""

from __future__ import annotations

import pytest

from benchmarks import soak

SECONDS = 10.0
CALLS = 20_000


@pytest.fixture(scope="module")
def figures() -> soak.Figures:
    return soak.sqlite_soak(SECONDS, CALLS)


@pytest.mark.slow
def test_mixed_hooks_and_feedback_get_no_5xx(figures):
    assert figures.hooks >= 200, "the soak did too little to mean anything"
    assert all(figures.load.by_hook[hook] > 0 for hook in soak.SERVICES)
    assert figures.feedback_posts > 0 and figures.load.resent > 0
    assert figures.server_errors == 0, dict(figures.load.statuses)
    assert figures.not_2xx == 0, dict(figures.load.statuses)
    assert figures.broken == 0
    assert figures.load_seconds <= SECONDS + 10  # bounded


@pytest.mark.slow
def test_no_feedback_is_lost(figures):
    assert figures.acknowledged > 0
    assert figures.stored_rows == figures.acknowledged
    # every resent post was answered as already stored, item for item
    assert sum(t.already for t in figures.tallies) > 0
    assert figures.store_failures == 0


@pytest.mark.slow
def test_every_card_returned_is_recorded(figures):
    assert figures.issued_rows == figures.cards > 0


@pytest.mark.slow
def test_memory_is_stable_and_no_worker_was_replaced(figures):
    assert len(figures.workers_start) == soak.WORKERS
    assert figures.workers_end == figures.workers_start
    for pid, growth in figures.growth.items():
        assert growth <= soak.RSS_GROWTH_BOUND_MB, (pid, figures.rss_start, figures.rss_end)
    assert figures.failures() == []
