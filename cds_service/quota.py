"""Per-client quotas: at most `limit` units per client in each fixed window of `window_s`.

Used for feedback items (a client cannot fill the store). In memory by default (per
process); in Redis when configured, so that every instance and worker counts against one
quota (``{prefix}:quota:{name}:{sha256(client)}:{window}``, expiring with its window, and
counted with Redis's own clock). A refused charge is not counted, so a batch too large for
what is left does not use up the rest. Over the quota: QuotaExceeded (429) with the seconds
to the next window; Redis unreachable: StoreUnavailable (503).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cds_service.errors import QuotaExceeded, StoreUnavailable

if TYPE_CHECKING:  # imported where used: only a service with Redis configured pays ~50 ms
    import redis


class Quota(Protocol):
    def charge(self, client: str, units: int) -> None:
        """Count `units` against the client's quota, or raise QuotaExceeded (not counted)."""
        ...


def _exceeded(what: str, retry_after_s: float) -> QuotaExceeded:
    return QuotaExceeded(
        f"this client has sent more {what} than its quota allows; retry later",
        retry_after_s=max(1, math.ceil(retry_after_s)),
    )


class MemoryQuota:
    """Fixed windows counted in this process."""

    def __init__(
        self, what: str, limit: int, window_s: float, clock: Callable[[], float] = time.time
    ):
        self._what = what
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._counts: dict[str, tuple[int, int]] = {}  # client -> (window, units)
        self._lock = threading.Lock()

    def charge(self, client: str, units: int) -> None:
        with self._lock:
            now = self._clock()
            window = math.floor(now / self._window_s)
            if len(self._counts) > 10_000:  # forget the clients of past windows
                self._counts = {c: v for c, v in self._counts.items() if v[0] == window}
            seen, used = self._counts.get(client, (window, 0))
            used = used if seen == window else 0
            if used + units > self._limit:
                raise _exceeded(self._what, (window + 1) * self._window_s - now)
            self._counts[client] = (window, used + units)


#: KEYS: the key prefix of this quota and client. ARGV: units, limit, window seconds.
_CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = math.floor(now / tonumber(ARGV[3]))
local key = KEYS[1] .. ':' .. window
local used = tonumber(redis.call('GET', key) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  return tostring((window + 1) * tonumber(ARGV[3]) - now)
end
redis.call('INCRBY', key, ARGV[1])
redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[3])) + 1)
return ''
"""


class RedisQuota:
    """Fixed windows counted in Redis, shared by every instance."""

    def __init__(self, client: redis.Redis, prefix: str, what: str, limit: int, window_s: float):
        self._prefix = f"{prefix}:quota:{what.replace(' ', '-')}"
        self._what = what
        self._limit = limit
        self._window_s = window_s
        self._script = client.register_script(_CHARGE)

    def charge(self, client: str, units: int) -> None:
        import redis

        key = f"{self._prefix}:{hashlib.sha256(client.encode()).hexdigest()}"
        try:
            wait = self._script(keys=[key], args=[units, self._limit, self._window_s])
        except redis.RedisError:
            raise StoreUnavailable(
                "the quota store (Redis) cannot be reached; retry later"
            ) from None
        if wait:
            raise _exceeded(self._what, float(wait))
