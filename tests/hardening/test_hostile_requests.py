"""Hostile request bodies to every hook and feedback endpoint, in demo and in JWT mode.

Each body must get 400 or 413 (401 in JWT mode when no token comes with it), never a 5xx,
and quickly (under HANG_S). Decisions documented here:

* Duplicate keys: the last one wins (as in Python's json, orjson and JavaScript's
  JSON.parse); the request is then judged on what it says. Never 5xx.
* A UTF-8 byte order mark is refused (400): RFC 8259 section 8.1 forbids sending one.
* NaN, Infinity and -Infinity are refused (400). A number that only parses as infinite
  (1e400) may pass where it is ignored, but must never reach a rule (refused or skipped);
  an integer too long to convert (Python's 4300-digit limit) is refused (400).
* A lone surrogate escaped in JSON (\\ud800) parses, then fails validation where it lands
  (400); the same code point sent raw (CESU-8 bytes) is invalid UTF-8 (400).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from cds_service.settings import DEFAULT_MAX_BODY_BYTES
from tests import builders as b
from tests.hardening.conftest import Client

HANG_S = 2.0
SERVICES = ("rls-secondary-causes", "rls-order-select", "rls-order-sign")
ENDPOINTS = tuple(f"/cds-services/{s}" for s in SERVICES) + tuple(
    f"/cds-services/{s}/feedback" for s in SERVICES
)
JSON = "application/json"
VALID = json.dumps(b.hook_request())
FEEDBACK = json.dumps(
    {
        "feedback": [
            {
                "card": "0f6b1c55-2f1e-4d3f-9a55-1d2c3b4a5f60",
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-28T12:00:00Z",
            }
        ]
    }
)
UNDER_LIMIT = DEFAULT_MAX_BODY_BYTES - 1024 * 1024  # 4 MB of string
OVER_LIMIT = DEFAULT_MAX_BODY_BYTES + 1024 * 1024


#: A valid patient-view call with an odd value in an unknown (ignored) top-level key: 200 at
#: its own endpoint, 400 at the others.
VALID_ELSEWHERE = frozenset({200, 400})


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes | None
    content_type: str | None = JSON
    allowed: frozenset[int] = frozenset({400})


def _nested(depth: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return open_ * depth + close * depth


CASES = (
    Case("empty-body", b""),
    Case("no-body-at-all", None),
    Case("json-null", b"null"),
    Case("json-array", b"[]"),
    Case("json-array-of-requests", ("[" + VALID + "]").encode()),
    Case("json-number", b"42"),
    Case("json-string", b'"patient-view"'),
    Case("json-true", b"true"),
    Case("whitespace-only", b" \n\t "),
    Case("truncated-json", VALID[: len(VALID) // 2].encode()),
    Case("trailing-garbage", (VALID + "}").encode()),
    Case("two-documents", (VALID + VALID).encode()),
    Case("nested-arrays-100k", _nested(100_000)),
    Case("nested-objects-100k", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    Case("nested-arrays-100k-unclosed", b"[" * 100_000),
    Case(
        "nested-arrays-1000-in-an-unknown-key",
        (VALID[:-1] + ', "x": ').encode() + _nested(1000) + b"}",
        allowed=VALID_ELSEWHERE,
    ),
    Case("string-4mb-as-hook", b'{"hook": "' + b"x" * UNDER_LIMIT + b'"}'),
    Case(
        "string-4mb-in-context",
        (VALID[:-1] + ', "context": {"patientId": "').encode() + b"p" * UNDER_LIMIT + b'"}}',
    ),
    Case(
        "string-6mb-over-limit", b'{"hook": "' + b"x" * OVER_LIMIT + b'"}', allowed=frozenset({413})
    ),
    Case(
        "array-6mb-over-limit", b"[" + b"0," * (OVER_LIMIT // 2) + b"0]", allowed=frozenset({413})
    ),
    Case("invalid-utf8", b'{"hook": "\xff\xfe\xfd"}'),
    Case(
        "invalid-utf8-in-valid-request",
        VALID.replace("Practitioner/example", "Practitioner/\udcff", 1).encode(
            "utf-8", "surrogateescape"
        ),
    ),
    Case("overlong-utf8", b'{"hook": "\xc0\xaf"}'),
    Case("lone-surrogate-escaped-hook", b'{"hook": "\\ud800"}'),
    Case("lone-surrogate-escaped-patient", VALID.replace('"p1"', '"p\\ud800"').encode()),
    Case("lone-surrogate-escaped-key", b'{"\\udfff": 1}'),
    Case("lone-surrogate-raw", b'{"hook": "\xed\xa0\x80"}'),
    Case("text-plain", VALID.encode(), "text/plain"),
    Case("form", b"hook=patient-view&hookInstance=x", "application/x-www-form-urlencoded"),
    Case(
        "multipart",
        b"--x\r\n\r\n" + VALID.encode() + b"\r\n--x--",
        "multipart/form-data; boundary=x",
    ),
    Case("no-content-type", VALID.encode(), None),
    Case("json-lookalike-type", VALID.encode(), "application/jsonp"),
    Case("nan", (VALID[:-1] + ', "x": NaN}').encode()),
    Case("infinity", (VALID[:-1] + ', "x": Infinity}').encode()),
    Case("minus-infinity", (VALID[:-1] + ', "x": -Infinity}').encode()),
    Case(
        "number-overflowing-to-infinity",
        (VALID[:-1] + ', "x": 1e400}').encode(),
        allowed=VALID_ELSEWHERE,
    ),
    Case("integer-of-5000-digits", (VALID[:-1] + ', "x": ' + "7" * 5000 + "}").encode()),
    Case("bom", b"\xef\xbb\xbf" + VALID.encode()),
    Case("utf16-body", VALID.encode("utf-16")),
    Case("nul-bytes", b"\x00" * 64),
)


@pytest.fixture(scope="module", params=["demo", "jwt"])
def post(request, demo_app: Flask, jwt_app: Flask, ehr: Client) -> Callable[..., TestResponse]:
    """POST a body as the mode's caller: anyone in demo mode, the trusted EHR in JWT mode."""
    app = demo_app if request.param == "demo" else jwt_app
    client = app.test_client()

    def send(path: str, body: bytes | None, content_type: str | None, token: bool = True):
        headers = {}
        if request.param == "jwt" and token:
            headers["Authorization"] = f"Bearer {ehr.token('http://localhost' + path)}"
        if content_type is not None:
            headers["Content-Type"] = content_type
        kwargs = {} if body is None else {"data": body}
        return client.post(path, headers=headers, **kwargs)

    return send


def _timed(send: Callable[[], TestResponse]) -> tuple[TestResponse, float]:
    started = time.monotonic()
    response = send()
    return response, time.monotonic() - started


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_body_gets_a_4xx_quickly(post, case: Case, endpoint: str):
    response, seconds = _timed(lambda: post(endpoint, case.body, case.content_type))
    assert response.status_code in case.allowed, (response.status_code, response.get_data()[:300])
    assert seconds < HANG_S
    if response.status_code >= 400:
        body = response.get_json()
        assert isinstance(body, dict) and body["error"], response.get_data()[:300]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", CASES[::4], ids=[c.name for c in CASES[::4]])
def test_jwt_mode_without_a_token_refuses_before_reading_the_body(jwt_app, case, endpoint):
    client = jwt_app.test_client()
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    started = time.monotonic()
    response = client.post(endpoint, data=case.body or b"", headers=headers)
    assert response.status_code == 401
    assert time.monotonic() - started < HANG_S


def test_a_valid_request_with_a_4mb_string_under_the_limit_is_answered(post):
    body = json.loads(VALID)
    body["extension"] = {"padding": "x" * UNDER_LIMIT}
    response, seconds = _timed(
        lambda: post("/cds-services/rls-secondary-causes", json.dumps(body).encode(), JSON)
    )
    assert response.status_code == 200
    assert seconds < HANG_S


def test_duplicate_keys_the_last_one_wins(post):
    """Documented choice: the last duplicate wins (no 400 for duplicates as such)."""
    path = "/cds-services/rls-secondary-causes"
    right_last = '{"hook": "order-sign", ' + VALID[1:]
    right_first = VALID[:-1] + ', "hook": "order-sign"}'
    assert post(path, right_last.encode(), JSON).status_code == 200
    wrong = post(path, right_first.encode(), JSON)
    assert wrong.status_code == 400
    assert wrong.get_json()["details"] == [{"loc": "hook", "msg": "expected 'patient-view'"}]
    assert "order-sign" not in wrong.get_data(as_text=True)  # the request is never echoed
    feedback = json.loads(FEEDBACK)["feedback"][0]
    twice = '{"feedback": "not a list", ' + json.dumps({"feedback": [feedback]})[1:]
    answer = post(path + "/feedback", twice.encode(), JSON)  # read: about an unknown card
    assert answer.status_code == 404 and answer.get_json()["error"] == "unknown-card"


def test_overflowing_numbers_never_make_a_card(post):
    """A ferritin of -1e400 parses as -inf in Python's json: it must be refused or skipped,
    never quoted in a card ("ferritin -inf ng/mL")."""
    path = "/cds-services/rls-secondary-causes"
    without = post(path, json.dumps(b.hook_request(b.prefetch(b.rls()))).encode(), JSON)
    for number in ("1e400", "-1e400"):
        ferritin = b.observation(b.FERRITIN, 12345.5, "ng/mL")
        text = json.dumps(b.hook_request(b.prefetch(b.rls(), ferritin)))
        response = post(path, text.replace("12345.5", number).encode(), JSON)
        assert response.status_code in (200, 400), number
        if response.status_code == 200:
            topics = [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]
            expected = [c["source"]["topic"]["code"] for c in without.get_json()["cards"]]
            assert topics == expected, number
            assert "inf" not in json.dumps(response.get_json()["cards"]), number
