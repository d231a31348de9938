"""Bulkheads: how many FHIR fetches one server, one client and the whole worker may hold.

All hooks of a worker share one fetch pool; without a bound per server, a server that drips
its answers holds every thread of the pool until the hooks' deadlines, and hooks against
healthy servers find none free. A fetch here first takes a slot of its FHIR server (the
request's fhirServer: origin and path, so two tenants on one host are two servers), of its
client (the JWT issuer) and of the pool, waiting for them in the hook's own thread no
longer than the hook's deadline; a hook that gets no slot in time reads nothing more (its
keys are "not read", the rules needing them stay silent). Slots are counted under one lock
and forgotten at zero, so the map never grows with the servers ever seen.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cds_service.fhir.clock import SYSTEM, Ticker
from cds_service.fhir.errors import FhirUnavailable
from cds_service.outbound import UrlRefused, target

#: The one key of the pool's own share (a server key is a URL, a client key an issuer).
POOL = ("pool", "")


class NoSlot(FhirUnavailable):
    """Raised when no fetch slot came free before the hook's deadline."""


@dataclass(frozen=True)
class Shares:
    """The most concurrent fetches one server, one client and the pool may hold."""

    server: int
    client: int
    pool: int


class Bulkheads:
    """Counted slots per FHIR server, per client and for the pool (thread-safe)."""

    def __init__(self, shares: Shares, ticker: Ticker = SYSTEM):
        self.shares = shares
        self._ticker = ticker
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], int] = {}
        self._waiting: set[threading.Event] = set()

    def held(self, server: str | None = None, client: str | None = None) -> int:
        """Slots held now by `server`, by `client`, or in the pool (for tests and reports)."""
        key = self.keys(server, "")[0] if server else ("client", client) if client else POOL
        with self._lock:
            return self._held.get(key, 0)

    @contextmanager
    def slot(
        self, server: str, client: str, deadline: float, pooled: bool = True
    ) -> Iterator[None]:
        """Hold one slot of `server` and `client` (and of the pool when the fetch runs on it)
        for the block; NoSlot when none is free by `deadline` (on the ticker)."""
        keys = self.keys(server, client, pooled)
        self.acquire(keys, deadline)
        try:
            yield
        finally:
            self.release(keys)

    @staticmethod
    def keys(server: str, client: str, pooled: bool = True) -> list[tuple[str, str]]:
        """The slots one fetch takes: its server (canonical URL, no trailing slash), its
        client and, when it runs on the pool, the pool."""
        try:
            canonical = target(server).url.rstrip("/")
        except UrlRefused:  # refused later, before any connection; counted as written
            canonical = server
        return [("server", canonical), ("client", client)] + ([POOL] if pooled else [])

    def acquire(self, keys: list[tuple[str, str]], deadline: float) -> None:
        """Take one slot of every key at once (never some of them), or NoSlot by `deadline`."""
        while True:
            woken = threading.Event()
            with self._lock:
                if all(self._held.get(key, 0) < self._limit(key) for key in keys):
                    for key in keys:
                        self._held[key] = self._held.get(key, 0) + 1
                    return
                if self._ticker.now() >= deadline:
                    raise NoSlot("no FHIR fetch slot came free before the hook's deadline")
                self._waiting.add(woken)
            try:
                self._ticker.wait(woken, deadline)
            finally:
                with self._lock:
                    self._waiting.discard(woken)

    def release(self, keys: list[tuple[str, str]]) -> None:
        """Give back one slot of every key and wake the waiters to try again."""
        with self._lock:
            for key in keys:
                left = self._held.get(key, 0) - 1
                if left > 0:
                    self._held[key] = left
                else:
                    self._held.pop(key, None)
            for waiter in self._waiting:
                waiter.set()

    def _limit(self, key: tuple[str, str]) -> int:
        limits = {"server": self.shares.server, "client": self.shares.client}
        return limits.get(key[0], self.shares.pool)
