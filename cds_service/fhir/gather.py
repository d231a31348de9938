"""Fetch every prefetch key the EHR left out, in parallel, within the hook's deadline.

Whatever is not back by the deadline is reported as unavailable and the hook answers from
what it has; a refusal (401/403) or an unreachable server is fatal, since then nothing can
be fetched at all, and the hook answers 412.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any

from cds_service.fhir.client import Fetched, FhirClient, RequestLog
from cds_service.fhir.errors import FhirError, FhirUnavailable


@dataclass
class Gathered:
    """The outcome of fetching a set of keys."""

    values: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    failed: dict[str, FhirError] = field(default_factory=dict)
    truncated: list[str] = field(default_factory=list)
    requests: list[RequestLog] = field(default_factory=list)

    @property
    def fatal(self) -> dict[str, FhirError]:
        """Keys that failed in a way no wait could fix (refused, unreachable)."""
        return {key: error for key, error in self.failed.items() if error.fatal}


def gather(
    client: FhirClient,
    executor: Executor,
    base: str,
    token: str | None,
    urls: Mapping[str, str],
    deadline: float,
) -> Gathered:
    """GET each key's rendered URL concurrently; wait no longer than `deadline` (monotonic)."""
    gathered = Gathered()
    futures: dict[str, Future[Fetched]] = {
        key: executor.submit(client.get, base, url, token, deadline, gathered.requests)
        for key, url in urls.items()
    }
    wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
    for key, future in futures.items():
        if not future.done():
            future.cancel()
            gathered.failed[key] = FhirUnavailable("the hook's deadline passed")
            continue
        try:
            fetched = future.result()
        except FhirError as error:
            gathered.failed[key] = error
            continue
        gathered.values[key] = fetched.value
        if fetched.truncated:
            gathered.truncated.append(key)
    return gathered
