"""BoundedCalls (issue 17, point 1): the caller waits at most its budget, a stuck call keeps
its slot, and no more than `slots` calls are ever stuck at once."""

from __future__ import annotations

import os
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


def test_workers_are_kept_between_calls_and_never_outnumber_the_slots():
    """Starting a thread per call cost milliseconds per hook under load: a worker serves the
    next call, and however the calls come there are no more workers than slots."""
    calls = BoundedCalls(3, "kept-test")
    first = calls.call(threading.current_thread, 5.0)
    assert calls.call(threading.current_thread, 5.0) is first
    release = threading.Event()
    callers = [
        threading.Thread(target=calls.call, args=(lambda: release.wait(10), 5.0)) for _ in range(6)
    ]
    for caller in callers:
        caller.start()
    release.set()
    for caller in callers:
        caller.join(10)
    workers = {calls.call(threading.current_thread, 5.0) for _ in range(20)}
    assert first in workers and len(workers) <= 3
    assert sum(t.name == "kept-test" for t in threading.enumerate()) <= 3


def test_a_forked_child_gets_its_own_workers_and_every_slot():
    """A gunicorn worker forks from a master whose workers do not exist in the child: the
    child must not hand calls to them (they would never run) nor miss the slots they held."""
    calls = BoundedCalls(1, "fork-test")
    assert calls.call(lambda: 1, 5.0) == 1  # a worker now idles in this process
    release = threading.Event()
    holder = threading.Thread(target=calls.call, args=(lambda: release.wait(10), 5.0))
    holder.start()  # ... and one holds the only slot
    try:
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only if a call is served at once
            try:
                os._exit(0 if calls.call(lambda: 7, 2.0) == 7 else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        release.set()
        holder.join(10)
