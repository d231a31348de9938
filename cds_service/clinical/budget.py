"""The CPU time one hook call's domain work may take (reading the patient's data).

The hook deadline bounds waiting for FHIR servers, not computing: a request can carry 5 MB
of resources. Every reader asks the budget before each resource; once it is spent the rest
are "not read" (skipped and counted as ``budget-exhausted``), their kinds of data become
unavailable so rules needing them stay silent instead of concluding from an absence, and
the hook answers with what it read. The clock is injectable (tests use a counting one); by
default it is the CPU time of the calling thread, so time spent waiting never counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CpuClock = Callable[[], float]


class Budget:
    """`seconds` of `clock` from now."""

    def __init__(self, seconds: float, clock: CpuClock = time.thread_time):
        self._clock = clock
        self._end = clock() + seconds

    def exhausted(self) -> bool:
        return self._clock() >= self._end
