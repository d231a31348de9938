"""The CPU time one hook call's domain work may take (reading the patient's data).

The hook deadline bounds waiting for FHIR servers, not computing: a request can carry 5 MB
of resources. Every reader asks the budget before each resource; once it is spent the rest
are "not read" (skipped and counted as ``budget-exhausted``), their kinds of data become
unavailable so rules needing them stay silent instead of concluding from an absence, and
the hook answers with what it read. The clock is injectable (tests use a counting one); by
default it is `call_cpu_time`: the CPU time of the calling thread, so time spent waiting
never counts, less its full garbage collections. A full collection walks the whole heap, so
its cost is the process's, not the call's (0.87 s was measured in a large process, which
withheld cards against the 0.5 s budget); young collections are the call's own allocations
and count.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

CpuClock = Callable[[], float]


class FullCollections:
    """A `gc.callbacks` entry that adds up, per thread, the CPU time of full collections.

    A collection runs in the thread whose allocation triggered it, so the time is charged
    to that thread's total; generation 0 and 1 collections return at once.
    """

    def __init__(self, clock: CpuClock = time.thread_time):
        self._clock = clock
        self._local = threading.local()

    def __call__(self, phase: str, info: Mapping[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._local.started = self._clock()
        elif (started := getattr(self._local, "started", None)) is not None:
            self._local.started = None
            self._local.total = self.spent() + self._clock() - started

    def spent(self) -> float:
        """CPU seconds this thread has spent in full collections so far."""
        total: float = getattr(self._local, "total", 0.0)
        return total


_FULL_COLLECTIONS = FullCollections()
gc.callbacks.append(_FULL_COLLECTIONS)


def call_cpu_time() -> float:
    """This thread's CPU time, less its full collections: the default budget clock."""
    return time.thread_time() - _FULL_COLLECTIONS.spent()


class Budget:
    """`seconds` of `clock` from now."""

    def __init__(self, seconds: float, clock: CpuClock = call_cpu_time):
        self._clock = clock
        self._end = clock() + seconds
        # A thread's CPU time grows no faster than the wall clock: until `seconds` of wall
        # time have passed, the default clock cannot be spent and is not read (it is a
        # system call, and a large record asks before each of its hundreds of resources).
        # An injected clock (tests) is read every time.
        self._unspent_until = time.perf_counter() + seconds if clock is call_cpu_time else 0.0

    def exhausted(self) -> bool:
        if time.perf_counter() < self._unspent_until:
            return False
        return self._clock() >= self._end
