"""Fetch every prefetch key the EHR left out, in parallel, within the hook's deadline.

Whatever is not back by the deadline is reported as unavailable and the hook answers from
what it has; a refusal (401/403) or an unreachable server is fatal, since then nothing can
be fetched at all, and the hook answers 412. Each fetch first takes a slot of its server,
its client and the pool (cds_service.fhir.bulkhead), waiting in the hook's thread: a slow
server holds its share of the pool, never all of it, and a key that gets no slot before
the deadline is not read. The bytes all the hook's fetches read share one budget.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from cds_service.fhir.bulkhead import Bulkheads, NoSlot, Shares
from cds_service.fhir.client import ByteBudget, Fetched, FhirClient, RequestLog
from cds_service.fhir.errors import FhirError, FhirUnavailable

#: Bulkheads that never make a fetch wait (callers that bound nothing: tests, tools).
UNBOUNDED = Shares(server=1 << 30, client=1 << 30, pool=1 << 30)


@dataclass
class Gathered:
    """The outcome of fetching a set of keys."""

    values: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    failed: dict[str, FhirError] = field(default_factory=dict)
    truncated: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    """Entries skipped per key: beyond the most one search keeps."""
    requests: list[RequestLog] = field(default_factory=list)

    @property
    def fatal(self) -> dict[str, FhirError]:
        """Keys that failed in a way no wait could fix (refused, unreachable)."""
        return {key: error for key, error in self.failed.items() if error.fatal}

    def add(self, key: str, fetched: Fetched) -> None:
        self.values[key] = fetched.value
        if fetched.truncated:
            self.truncated.append(key)
        if fetched.skipped:
            self.skipped[key] = fetched.skipped


def gather(
    client: FhirClient,
    executor: Executor,
    base: str,
    token: str | None,
    urls: Mapping[str, str],
    deadline: float,
    *,
    bulkheads: Bulkheads | None = None,
    issuer: str = "",
    budget: ByteBudget | None = None,
) -> Gathered:
    """GET each key's rendered URL concurrently; wait no longer than `deadline` (on the
    client's ticker). `issuer` names the calling client for its bulkhead; `budget` bounds
    the bytes of all the fetches together."""
    gathered = Gathered()
    heads = bulkheads or Bulkheads(UNBOUNDED, client.ticker)
    shared = budget or ByteBudget(1 << 62)
    all_done = threading.Event()
    lock = threading.Lock()
    futures: dict[str, Future[Fetched]] = {}
    pending = [len(urls)]
    keys = heads.keys(base, issuer)

    def finished(_: Future[Fetched]) -> None:
        with lock:
            pending[0] -= 1
            if pending[0] == 0:
                all_done.set()

    for key, url in urls.items():
        try:
            heads.acquire(keys, deadline)
        except NoSlot as none:
            gathered.failed[key] = none
            finished(Future())
            continue

        def fetch(url: str = url) -> Fetched:
            try:
                return client.get(base, url, token, deadline, gathered.requests, shared)
            finally:
                heads.release(keys)

        try:
            future = executor.submit(fetch)
        except RuntimeError:  # the pool is shut down (the worker is stopping)
            heads.release(keys)
            raise
        futures[key] = future
        future.add_done_callback(finished)
    if not urls:
        all_done.set()
    client.ticker.wait(all_done, deadline)
    for key, future in futures.items():
        if not future.done():
            if future.cancel():  # never started: its slots were never given back
                heads.release(keys)
            gathered.failed[key] = FhirUnavailable("the hook's deadline passed")
            continue
        try:
            gathered.add(key, future.result())
        except FhirError as error:
            gathered.failed[key] = error
    return gathered
