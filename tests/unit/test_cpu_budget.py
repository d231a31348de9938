"""The per-call CPU budget counts the call's own work, not a full collection of the heap.

A full (generation 2) garbage collection walks every object the process holds, so its cost
depends on the process, not on the request that happened to trigger it. Counted against a
0.5 s budget, a full collection in a large process (0.87 s was measured in the test suite)
silently turned a patient's labs into "not read" and withheld their card.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest

from cds_service.clinical.budget import Budget, FullCollections, call_cpu_time


def spin(seconds: float) -> None:
    """Burn `seconds` of this thread's CPU time (measured by CPU time, not wall time)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.fixture
def costly_full_collections() -> Iterator[None]:
    """Every full collection costs 50 ms of CPU (a callback that runs inside it)."""

    def cost(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            spin(0.05)

    gc.callbacks.append(cost)
    try:
        yield
    finally:
        gc.callbacks.remove(cost)


@pytest.mark.usefixtures("costly_full_collections")
def test_a_full_collection_during_a_call_does_not_spend_its_budget():
    budget = Budget(0.02)
    gc.collect()
    assert not budget.exhausted()


@pytest.mark.usefixtures("costly_full_collections")
def test_the_call_clock_leaves_out_full_collections_only():
    before = call_cpu_time()
    gc.collect()
    gc.collect(0)  # a young collection is the call's own allocations: it counts
    spin(0.01)
    spent = call_cpu_time() - before
    assert 0.01 <= spent < 0.05


def test_full_collections_are_timed_per_thread_by_the_injected_clock():
    ticks = iter([1.0, 1.25, 7.0, 7.5, 9.0])
    timer = FullCollections(clock=lambda: next(ticks))
    timer("start", {"generation": 2})
    timer("stop", {"generation": 2})
    timer("start", {"generation": 0})  # young collections are not read at all
    timer("stop", {"generation": 1})
    timer("start", {"generation": 2})
    timer("stop", {"generation": 2})
    assert timer.spent() == pytest.approx(0.75)


def test_the_default_clock_is_spent_by_the_calls_cpu_time_though_read_lazily():
    """The default clock is not read until as much wall time has passed (a thread's CPU
    time grows no faster): the budget is still spent when the CPU time is, never later."""
    budget = Budget(0.05)
    assert not budget.exhausted()
    spin(0.06)
    assert budget.exhausted()


def test_an_injected_clock_is_read_at_every_look():
    looks: list[int] = []

    def clock() -> float:
        looks.append(1)
        return float(len(looks))

    budget = Budget(2.5, clock)  # started at 1: spent at the third look after
    assert [budget.exhausted() for _ in range(3)] == [False, False, True]
    assert len(looks) == 4
