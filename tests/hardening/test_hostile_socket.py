"""Over a real socket: a slow client that sends half a body and stops must not wedge others.

The app runs under werkzeug's threaded server on 127.0.0.1 (one thread per connection).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
import requests
from flask import Flask

from cds_service.settings import DEFAULT_MAX_BODY_BYTES
from tests import builders as b
from tests.live import chunked_post, padded, serving

HOOK = "/cds-services/rls-secondary-causes"
HANG_S = 2.0


@pytest.fixture(scope="module")
def base_url(demo_app: Flask) -> Iterator[str]:
    with serving(demo_app) as url:
        yield url


def _stalled_client(base_url: str, head: bytes, sent: bytes) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(head + sent)
    return sock


def _head(content_length: int | None) -> bytes:
    length = (
        f"Content-Length: {content_length}\r\n"
        if content_length is not None
        else "Transfer-Encoding: chunked\r\n"
    )
    return (
        f"POST {HOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{length}\r\n"
    ).encode()


def _hook(base_url: str) -> requests.Response:
    started = time.monotonic()
    response = requests.post(base_url + HOOK, json=b.hook_request(), timeout=HANG_S)
    assert time.monotonic() - started < HANG_S
    return response


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_half_a_body_then_silence_does_not_wedge_other_requests(base_url, framing):
    body = json.dumps(b.hook_request()).encode()
    if framing == "chunked":
        sent = f"{len(body):x}\r\n".encode() + body[: len(body) // 2]
        stalled = [_stalled_client(base_url, _head(None), sent) for _ in range(4)]
    else:
        sent = body[: len(body) // 2]
        stalled = [_stalled_client(base_url, _head(len(body)), sent) for _ in range(4)]
    try:
        for _ in range(5):  # served while four clients hold connections mid-body
            assert _hook(base_url).status_code == 200
        stalled[0].settimeout(0.5)  # the stalled client itself gets no answer: it must wait
        with pytest.raises(TimeoutError):
            stalled[0].recv(1)
    finally:
        for sock in stalled:
            sock.close()  # the client gives up
    time.sleep(0.1)
    assert _hook(base_url).status_code == 200


def test_a_client_that_sends_nothing_after_connecting_does_not_wedge_others(base_url):
    idle = [_stalled_client(base_url, b"", b"") for _ in range(4)]
    try:
        assert _hook(base_url).status_code == 200
    finally:
        for sock in idle:
            sock.close()


def test_over_the_limit_is_413_without_reading_the_body(base_url):
    """Content-Length above RLS_CDS_MAX_BODY_BYTES: 413 at once, the body never sent."""
    sock = _stalled_client(base_url, _head(DEFAULT_MAX_BODY_BYTES + 1), b"{")
    try:
        sock.settimeout(HANG_S)
        answer = sock.recv(200)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert _hook(base_url).status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"hook": "\xff"}', b"null", b'{"hook": "\\ud800"}'],
    ids=["nested-100k", "invalid-utf8", "null", "lone-surrogate"],
)
def test_hostile_bodies_over_the_socket(base_url, body):
    started = time.monotonic()
    response = requests.post(
        base_url + HOOK, data=body, headers={"Content-Type": "application/json"}, timeout=HANG_S
    )
    assert response.status_code == 400
    assert time.monotonic() - started < HANG_S


@pytest.mark.parametrize("path", [HOOK, HOOK + "/feedback"])
def test_a_chunked_body_over_the_limit_is_413_not_invalid_json(base_url, path):
    """Issue 17: a chunked body was cut at RLS_CDS_MAX_BODY_BYTES and answered 400 "not
    valid JSON"; it is too large, and says so."""
    answer = chunked_post(base_url, path, padded(b.hook_request(), DEFAULT_MAX_BODY_BYTES + 1))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert _hook(base_url).status_code == 200


def test_a_chunked_body_of_exactly_the_limit_is_read_whole(base_url):
    answer = chunked_post(base_url, HOOK, padded(b.hook_request(), DEFAULT_MAX_BODY_BYTES))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
