"""The FHIR side's clock: monotonic seconds, and waiting for an event until a time on it.

Deadlines, the watchdog over each exchange and the wait for a bulkhead slot all read this
clock, so a test can stand time still (every healthy fetch completes while a dripping one
waits) and then move it past a deadline, instead of asserting on wall-clock time.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Ticker(Protocol):
    """Monotonic time in seconds, and a bounded wait on that time."""

    def now(self) -> float:
        """Seconds on a monotonic scale (only differences mean anything)."""
        ...

    def wait(self, event: threading.Event, until: float) -> bool:
        """Block until `event` is set or now() reaches `until`; True when the event was set."""
        ...


class SystemTicker:
    """The process's monotonic clock (production)."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, until: float) -> bool:
        return event.wait(max(0.0, until - time.monotonic()))


SYSTEM = SystemTicker()
