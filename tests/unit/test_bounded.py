"""BoundedCalls (issue 17, point 1): the caller waits at most its budget, a stuck call keeps
its slot, and no more than `slots` calls are ever stuck at once."""

from __future__ import annotations

import threading

import pytest

from cds_service.bounded import BoundedCalls, Overdue


def test_the_result_and_the_exception_of_the_call_come_back():
    calls = BoundedCalls(2, "test")
    assert calls.call(lambda: 42, 5.0) == 42
    with pytest.raises(ZeroDivisionError):
        calls.call(lambda: 1 / 0, 5.0)


def test_a_silent_call_is_given_up_on_and_holds_its_slot_until_it_ends():
    calls = BoundedCalls(1, "test")
    release = threading.Event()
    done = threading.Event()

    def stuck() -> None:
        release.wait(10)
        done.set()

    with pytest.raises(Overdue):
        calls.call(stuck, 0.05)
    with pytest.raises(Overdue, match="still waiting on an earlier call"):
        calls.call(lambda: 1, 0.05)  # the one slot is still taken: no second stuck thread
    release.set()
    assert done.wait(10)
    assert calls.call(lambda: 2, 5.0) == 2  # the slot is back once the stuck call ended
