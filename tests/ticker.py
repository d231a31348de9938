"""A FHIR ticker (cds_service.fhir.clock) that stands still until the test moves it."""

from __future__ import annotations

import threading

#: How often a waiter looks at the ticker again (real seconds; never asserted on).
POLL_S = 0.005


class ManualTicker:
    """Time that passes only by advance(): a deadline passes when the test says so."""

    def __init__(self, start: float = 1000.0):
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def wait(self, event: threading.Event, until: float) -> bool:
        while not event.is_set():
            if self.now() >= until:
                return False
            event.wait(POLL_S)
        return True
