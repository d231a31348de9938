"""JWT replay protection: each (issuer, ``jti``) is accepted once, until the token expires.

In memory by default (one process); in Redis when configured, so that every instance behind
a load balancer shares one record. Three rules hold in both:

* **Fail closed.** A store that cannot answer refuses the call (503) instead of letting a
  possible replay through.
* **Per-issuer quotas.** Each trusted issuer may hold at most its share of the records
  (the store's capacity divided among the issuers); an issuer over its share gets 429 with
  the time until its oldest record expires, and never makes another issuer wait.
* **Records have a beginning.** The store remembers since when it records (the process
  start in memory; a key written once in Redis, with Redis's own clock). A token issued
  before that moment may have been used before the records begin (a restart, or Redis
  losing its data) and is refused (401): after a data loss no earlier token can be
  replayed, and clients simply send fresh tokens, as they do for every call.

Keys and records hold a SHA-256 of (issuer, jti), never a token value.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import heapq
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from cds_service.bounded import BoundedCalls, Overdue
from cds_service.errors import QuotaExceeded, ReplayStoreUnavailable

if TYPE_CHECKING:  # imported where used: only a service with Redis configured pays ~50 ms
    import redis

#: Each read and connect; a command as a whole gets REDIS_COMMAND_BUDGET_S.
REDIS_TIMEOUT_S = 0.5
#: The longest one Redis command may take, however its answer arrives: the socket timeout
#: bounds each read only, and a server that drips a byte at a time stays under it forever.
REDIS_COMMAND_BUDGET_S = 1.0
#: Commands that may be stuck on a dripping Redis at once (each holds a daemon thread and a
#: pooled connection); beyond that a command waits for a free slot within its budget.
REDIS_STUCK_SLOTS = 16


class Use(enum.Enum):
    """What the store says about a token."""

    FIRST = "first"
    REPLAY = "replay"
    PREDATES_RECORDS = "predates-records"


class ReplayStore(Protocol):
    def first_use(self, issuer: str, jti: str, issued_at: float, expires_at: float) -> Use:
        """Record the token unless it is a replay or older than the records. Raises
        QuotaExceeded when the issuer holds its share of records, ReplayStoreUnavailable
        when the store cannot tell."""
        ...

    def reachable(self) -> bool:
        """True when the store can answer (readiness)."""
        ...


def _digest(issuer: str, jti: str) -> str:
    """A fixed-length key: token values never become raw keys or log fields."""
    return hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()


def issuer_share(capacity: int, issuers: int) -> int:
    """Records one issuer may hold: an even share of the capacity."""
    return max(1, capacity // max(1, issuers))


def _quota_exceeded(retry_after_s: float) -> QuotaExceeded:
    return QuotaExceeded(
        "this client has too many unexpired tokens on record; retry later",
        retry_after_s=max(1, math.ceil(retry_after_s)),
    )


class MemoryReplayStore:
    """Bounded sets of unexpired token ids, one per issuer, for one process."""

    def __init__(self, share: int, clock: Callable[[], float] = time.time):
        self._share = share
        self._clock = clock
        self.started_at = clock()
        self._expiry: dict[str, dict[str, float]] = {}
        self._queues: dict[str, list[tuple[float, str]]] = {}
        self._lock = threading.Lock()

    def first_use(self, issuer: str, jti: str, issued_at: float, expires_at: float) -> Use:
        if issued_at < math.floor(self.started_at):
            return Use.PREDATES_RECORDS
        key = _digest(issuer, jti)
        with self._lock:
            now = self._clock()
            expiry = self._expiry.setdefault(issuer, {})
            queue = self._queues.setdefault(issuer, [])
            while queue and queue[0][0] <= now:
                _, old = heapq.heappop(queue)
                expiry.pop(old, None)
            if key in expiry:
                return Use.REPLAY
            if len(expiry) >= self._share:
                raise _quota_exceeded(queue[0][0] - now)
            expiry[key] = expires_at
            heapq.heappush(queue, (expires_at, key))
            return Use.FIRST

    def __len__(self) -> int:
        return sum(len(records) for records in self._expiry.values())

    def reachable(self) -> bool:
        return True


#: One round trip, atomic: drop the issuer's expired records, then refuse a replay, a
#: token older than the records, or an issuer over its share; else record the token.
#: Times are Redis's own (TIME), so the instances' clocks need not agree with its.
#: KEYS: the issuer's sorted set (member: digest, score: expiry), the records' start.
#: ARGV: digest, seconds to keep, share, the token's iat.
_FIRST_USE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local since = redis.call('GET', KEYS[2])
if not since then
  since = t[1]
  redis.call('SET', KEYS[2], since)
end
if tonumber(ARGV[4]) < tonumber(since) then return {2, '0'} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {1, '0'} end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {3, tostring(tonumber(oldest[2]) - now)}
end
local expires = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expires, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(last[2])) + 1)
return {0, '0'}
"""
_VERDICTS = {0: Use.FIRST, 1: Use.REPLAY, 2: Use.PREDATES_RECORDS}
#: The records' start, written once (Redis's clock): KEYS: the start key.
_BEGIN = """
if not redis.call('GET', KEYS[1]) then redis.call('SET', KEYS[1], redis.call('TIME')[1]) end
return redis.call('GET', KEYS[1])
"""


@functools.cache
def _bounded_redis() -> type[redis.Redis]:
    """The client class, made on first use (redis is imported only when configured)."""
    import redis

    class BoundedRedis(redis.Redis):
        """Every command (scripts and pings included) on a worker thread, waited for at most
        REDIS_COMMAND_BUDGET_S; an overdue one raises redis.TimeoutError, which every caller
        already treats as Redis being unreachable (fail closed)."""

        _calls = BoundedCalls(REDIS_STUCK_SLOTS, "redis-command")

        def execute_command(self, *args: Any, **options: Any) -> Any:
            command = super().execute_command
            try:
                return self._calls.call(lambda: command(*args, **options), REDIS_COMMAND_BUDGET_S)
            except Overdue as overdue:
                raise redis.TimeoutError(str(overdue)) from None

    return BoundedRedis


def redis_client(url: str) -> redis.Redis:
    """A Redis client whose every read gives up after REDIS_TIMEOUT_S and every command
    after REDIS_COMMAND_BUDGET_S."""
    return _bounded_redis().from_url(
        url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )


class RedisReplayStore:
    """Token ids in Redis: one sorted set per issuer, ``{prefix}:jti:{sha256(iss)}``, and the
    records' start under ``{prefix}:jti-since``. Persistence the operator must configure
    (README, Replay protection): AOF with ``appendfsync always`` and no eviction."""

    def __init__(
        self, client: redis.Redis, prefix: str, share: int, clock: Callable[[], float] = time.time
    ):
        self._redis = client
        self._prefix = prefix
        self._share = share
        self._clock = clock
        self._script = client.register_script(_FIRST_USE)
        self._begin = client.register_script(_BEGIN)

    @classmethod
    def from_url(cls, url: str, prefix: str, share: int) -> RedisReplayStore:
        return cls(redis_client(url), prefix, share)

    def begin(self) -> None:
        """Mark the records' start now unless Redis already holds one (called at start-up,
        so that tokens a client mints after the service started are never older than the
        records; after a data loss the mark is written again by the first call)."""
        self._begin(keys=[self.since_key])

    def key(self, issuer: str) -> str:
        return f"{self._prefix}:jti:{hashlib.sha256(issuer.encode()).hexdigest()}"

    @property
    def since_key(self) -> str:
        return f"{self._prefix}:jti-since"

    def first_use(self, issuer: str, jti: str, issued_at: float, expires_at: float) -> Use:
        import redis

        # relative expiry: the Redis host's clock need not agree with ours
        seconds = max(math.ceil(expires_at - self._clock()), 1)
        try:
            verdict, detail = self._script(
                keys=[self.key(issuer), self.since_key],
                args=[_digest(issuer, jti), seconds, self._share, math.floor(issued_at)],
            )
        except redis.RedisError:
            raise ReplayStoreUnavailable(
                "the replay store (Redis) cannot be reached, so the token cannot be checked "
                "for replay; the call is refused (fail closed); retry later"
            ) from None
        if int(verdict) == 3:
            raise _quota_exceeded(float(detail))
        return _VERDICTS[int(verdict)]

    def reachable(self) -> bool:
        import redis

        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False
