"""JWT replay protection: each (issuer, ``jti``) is accepted once, until the token expires.

In memory by default (one process); in Redis when configured, so that every instance behind
a load balancer shares one record (``SET key 1 NX EX seconds-left``: atomic, expires by itself).
Both fail closed: a store that cannot answer, or a memory store that is full of unexpired
entries, refuses the call with 503 instead of letting a possible replay through.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from cds_service.errors import ReplayStoreUnavailable

REDIS_TIMEOUT_S = 0.5


class ReplayStore(Protocol):
    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Record the token; True the first time, False for a replay. Raises
        ReplayStoreUnavailable when it cannot tell."""
        ...

    def reachable(self) -> bool:
        """True when the store can answer (readiness)."""
        ...


def _digest(issuer: str, jti: str) -> str:
    """A fixed-length key: token values never become raw keys or log fields."""
    return hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()


class MemoryReplayStore:
    """A bounded set of unexpired token ids for one process; expired ones are evicted."""

    def __init__(self, capacity: int, clock: Callable[[], float] = time.time):
        self._capacity = capacity
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._queue: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        key = _digest(issuer, jti)
        with self._lock:
            now = self._clock()
            while self._queue and self._queue[0][0] <= now:
                _, old = heapq.heappop(self._queue)
                self._expiry.pop(old, None)
            if key in self._expiry:
                return False
            if len(self._expiry) >= self._capacity:
                raise ReplayStoreUnavailable(
                    "too many tokens in flight to check for replay; retry later"
                )
            self._expiry[key] = expires_at
            heapq.heappush(self._queue, (expires_at, key))
            return True

    def __len__(self) -> int:
        return len(self._expiry)

    def reachable(self) -> bool:
        return True


class RedisReplayStore:
    """Token ids in Redis under ``{prefix}:jti:{sha256(iss, jti)}``, expiring with the token."""

    def __init__(self, client: redis.Redis, prefix: str, clock: Callable[[], float] = time.time):
        self._redis = client
        self._prefix = prefix
        self._clock = clock

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisReplayStore:
        client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        return cls(client, prefix)

    def key(self, issuer: str, jti: str) -> str:
        return f"{self._prefix}:jti:{_digest(issuer, jti)}"

    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        try:
            # relative expiry: the Redis host's clock need not agree with ours
            seconds = max(math.ceil(expires_at - self._clock()), 1)
            stored = self._redis.set(self.key(issuer, jti), b"1", nx=True, ex=seconds)
        except redis.RedisError:
            raise ReplayStoreUnavailable(
                "the replay store (Redis) cannot be reached, so the token cannot be checked "
                "for replay; the call is refused (fail closed); retry later"
            ) from None
        return bool(stored)

    def reachable(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False
