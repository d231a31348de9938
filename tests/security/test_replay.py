"""Replay protection: a jti once until it expires; Redis shared by instances; fail closed."""

from __future__ import annotations

import time

import pytest
import redis

from cds_service.auth.replay import MemoryReplayStore, RedisReplayStore
from cds_service.errors import ReplayStoreUnavailable
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
        store = RedisReplayStore.from_url(REDIS_URL, redis_prefix)
        assert store.first_use(ISS, "jti-1", expires_at=time.time() + 120)
        assert not store.first_use(ISS, "jti-1", expires_at=time.time() + 120)
        ttl = redis.Redis.from_url(REDIS_URL).ttl(store.key(ISS, "jti-1"))
        assert 100 < ttl <= 121

    def test_keys_carry_the_deployment_prefix_and_no_token_value(self, redis_prefix):
        store = RedisReplayStore.from_url(REDIS_URL, redis_prefix)
        store.first_use(ISS, "visible-jti", expires_at=time.time() + 60)
        (key,) = redis.Redis.from_url(REDIS_URL).scan_iter(match=f"{redis_prefix}:*")
        assert key.startswith(f"{redis_prefix}:jti:".encode())
        assert b"visible-jti" not in key

    def test_the_same_jti_from_two_issuers_are_two_tokens(self, redis_prefix):
        store = RedisReplayStore.from_url(REDIS_URL, redis_prefix)
        assert store.first_use("https://a.example", "j", time.time() + 60)
        assert store.first_use("https://b.example", "j", time.time() + 60)

    def test_other_prefixes_do_not_share_records(self, redis_prefix):
        one = RedisReplayStore.from_url(REDIS_URL, redis_prefix + ":one")
        two = RedisReplayStore.from_url(REDIS_URL, redis_prefix + ":two")
        assert one.first_use(ISS, "j", time.time() + 60)
        assert two.first_use(ISS, "j", time.time() + 60)


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
        store = MemoryReplayStore(capacity=100, clock=clock)
        assert store.first_use(ISS, "j", expires_at=1060)
        assert not store.first_use(ISS, "j", expires_at=1060)
        clock.now = 1060
        assert store.first_use(ISS, "j", expires_at=1120)

    def test_expired_entries_are_evicted(self):
        clock = Clock()
        store = MemoryReplayStore(capacity=100, clock=clock)
        for n in range(50):
            store.first_use(ISS, f"j{n}", expires_at=1000 + n + 1)
        clock.now = 1025
        store.first_use(ISS, "late", expires_at=2000)
        assert len(store) == 26

    def test_a_full_store_refuses_instead_of_forgetting(self):
        """Forgetting an unexpired jti would let its replay through: 503 instead."""
        clock = Clock()
        store = MemoryReplayStore(capacity=2, clock=clock)
        store.first_use(ISS, "a", 1100)
        store.first_use(ISS, "b", 1100)
        with pytest.raises(ReplayStoreUnavailable):
            store.first_use(ISS, "c", 1100)
        clock.now = 1100
        assert store.first_use(ISS, "c", 1200)
