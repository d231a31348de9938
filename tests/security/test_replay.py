"""Replay protection: a jti once until it expires; Redis shared by instances; fail closed."""

from __future__ import annotations

import time

import pytest
import redis

from cds_service.auth.replay import MemoryReplayStore, RedisReplayStore, Use, issuer_share
from cds_service.errors import QuotaExceeded
from tests.security.conftest import ISS, REDIS_URL, post_hook

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


class TestRedisReplay:
    def test_a_token_used_on_one_instance_is_refused_by_another(
        self, make_app, redis_prefix, es384
    ):
        """Two app instances (two 'pods') sharing the machine's Redis."""
        first = make_app(redis_url=REDIS_URL, redis_prefix=redis_prefix).test_client()
        second = make_app(redis_url=REDIS_URL, redis_prefix=redis_prefix).test_client()
        token = es384.token()
        assert post_hook(first, token).status_code == 200
        response = post_hook(second, token)
        assert response.status_code == 401
        assert "replay" in response.get_json()["message"]
        assert post_hook(second, es384.token()).status_code == 200

    def test_the_record_expires_with_the_token(self, redis_prefix, es384):
        store = RedisReplayStore.from_url(REDIS_URL, redis_prefix, share=100)
        store.begin()
        now = time.time()
        assert store.first_use(ISS, "jti-1", now, now + 120) is Use.FIRST
        assert store.first_use(ISS, "jti-1", now, now + 120) is Use.REPLAY
        ttl = redis.Redis.from_url(REDIS_URL).ttl(store.key(ISS))
        assert 100 < ttl <= 122

    def test_keys_carry_the_deployment_prefix_and_no_token_value(self, redis_prefix):
        store = RedisReplayStore.from_url(REDIS_URL, redis_prefix, share=100)
        store.begin()
        store.first_use(ISS, "visible-jti", time.time(), time.time() + 60)
        connection = redis.Redis.from_url(REDIS_URL)
        keys = sorted(connection.scan_iter(match=f"{redis_prefix}:*"))
        assert keys == sorted([store.key(ISS).encode(), store.since_key.encode()])
        members = connection.zrange(store.key(ISS), 0, -1)
        for stored in [*keys, *members]:
            assert b"visible-jti" not in stored and ISS.encode() not in stored

    def test_the_same_jti_from_two_issuers_are_two_tokens(self, redis_prefix):
        store = RedisReplayStore.from_url(REDIS_URL, redis_prefix, share=100)
        store.begin()
        now = time.time()
        assert store.first_use("https://a.example", "j", now, now + 60) is Use.FIRST
        assert store.first_use("https://b.example", "j", now, now + 60) is Use.FIRST

    def test_other_prefixes_do_not_share_records(self, redis_prefix):
        one = RedisReplayStore.from_url(REDIS_URL, redis_prefix + ":one", share=100)
        one.begin()
        two = RedisReplayStore.from_url(REDIS_URL, redis_prefix + ":two", share=100)
        two.begin()
        now = time.time()
        assert one.first_use(ISS, "j", now, now + 60) is Use.FIRST
        assert two.first_use(ISS, "j", now, now + 60) is Use.FIRST

    def test_an_issuer_over_its_share_is_refused_and_others_are_not(self, redis_prefix):
        store = RedisReplayStore.from_url(REDIS_URL, redis_prefix, share=3)
        store.begin()
        now = time.time()
        for n in range(3):
            assert store.first_use(ISS, f"j{n}", now, now + 60) is Use.FIRST
        with pytest.raises(QuotaExceeded) as refused:
            store.first_use(ISS, "j3", now, now + 60)
        assert 1 <= refused.value.retry_after_s <= 61
        assert store.first_use("https://other.example", "j3", now, now + 60) is Use.FIRST

    def test_a_token_issued_before_the_records_begin_is_refused(self, redis_prefix):
        store = RedisReplayStore.from_url(REDIS_URL, redis_prefix, share=100)
        store.begin()
        now = time.time()
        assert store.first_use(ISS, "new", now, now + 60) is Use.FIRST  # records begin now
        old = now - 5
        assert store.first_use(ISS, "old", old, old + 60) is Use.PREDATES_RECORDS


class TestRedisDown:
    def test_a_valid_token_gets_503_when_redis_cannot_be_reached(self, make_app, es384):
        """Fail closed: without the replay check no call is let through."""
        client = make_app(redis_url=CLOSED_PORT_URL).test_client()
        response = post_hook(client, es384.token())
        assert response.status_code == 503
        body = response.get_json()
        assert body["error"] == "replay-store-unavailable"
        assert "fail closed" in body["message"]
        assert response.headers["Retry-After"]

    def test_an_invalid_token_is_still_401_when_redis_is_down(self, make_app, stranger):
        client = make_app(redis_url=CLOSED_PORT_URL).test_client()
        assert post_hook(client, stranger.token()).status_code == 401

    def test_readiness_reports_the_replay_store(self, make_app):
        response = make_app(redis_url=CLOSED_PORT_URL).test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["replay"] is False

    def test_readiness_with_redis_up(self, make_app, redis_prefix):
        app = make_app(redis_url=REDIS_URL, redis_prefix=redis_prefix)
        assert app.test_client().get("/readyz").get_json()["checks"]["replay"] is True

    def test_plain_redis_url_variable_is_honoured(self, monkeypatch):
        from cds_service.settings import Settings

        monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
        assert Settings().redis_url == "redis://cache:6379/2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestMemoryReplayStore:
    def test_a_jti_is_accepted_once_until_it_expires(self):
        clock = Clock()
        store = MemoryReplayStore(share=100, clock=clock)
        assert store.first_use(ISS, "j", 1000, expires_at=1060) is Use.FIRST
        assert store.first_use(ISS, "j", 1000, expires_at=1060) is Use.REPLAY
        clock.now = 1060
        assert store.first_use(ISS, "j", 1060, expires_at=1120) is Use.FIRST

    def test_expired_entries_are_evicted(self):
        clock = Clock()
        store = MemoryReplayStore(share=100, clock=clock)
        for n in range(50):
            store.first_use(ISS, f"j{n}", 1000, expires_at=1000 + n + 1)
        clock.now = 1025
        store.first_use(ISS, "late", 1025, expires_at=2000)
        assert len(store) == 26

    def test_an_issuer_over_its_share_gets_429_instead_of_forgetting(self):
        """Forgetting an unexpired jti would let its replay through: refuse instead, and
        say when the issuer's oldest record expires."""
        clock = Clock()
        store = MemoryReplayStore(share=2, clock=clock)
        store.first_use(ISS, "a", 1000, 1100)
        store.first_use(ISS, "b", 1000, 1100)
        with pytest.raises(QuotaExceeded) as refused:
            store.first_use(ISS, "c", 1000, 1100)
        assert refused.value.retry_after_s == 100
        clock.now = 1100
        assert store.first_use(ISS, "c", 1100, 1200) is Use.FIRST

    def test_one_issuer_filling_its_share_never_refuses_another(self):
        store = MemoryReplayStore(share=2, clock=Clock())
        for jti in ("a", "b"):
            store.first_use(ISS, jti, 1000, 1100)
        with pytest.raises(QuotaExceeded):
            store.first_use(ISS, "c", 1000, 1100)
        assert store.first_use("https://other.example", "c", 1000, 1100) is Use.FIRST

    def test_a_token_issued_before_the_store_started_is_refused(self):
        store = MemoryReplayStore(share=10, clock=Clock())  # started at 1000.0
        assert store.first_use(ISS, "old", 999, 1100) is Use.PREDATES_RECORDS
        assert store.first_use(ISS, "now", 1000, 1100) is Use.FIRST
        assert len(store) == 1

    def test_shares_divide_the_capacity_among_the_issuers(self):
        assert issuer_share(100_000, 4) == 25_000
        assert issuer_share(100, 0) == 100
