"""Issue 16, point 6: the smaller findings, each refused over HTTP (or at start-up).

* without RLS_CDS_PUBLIC_BASE_URL the expected ``aud`` came from the caller's Host header;
* one issuer could fill the in-memory replay store and make every client get 503;
* a FHIR access token that is not visible ASCII gave a 500;
* error bodies echoed the ``hook`` value and the service id;
* answers holding patient data had no ``nosniff`` and no ``no-store``;
* no per-client feedback quota (50,000 unknown-card rows in 18 s);
* a CORS origin with a wildcard was accepted at start-up and matched nothing;
* after Redis lost its data, tokens seen before could be replayed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from cds_service import cli
from cds_service.app import create_app
from cds_service.settings import Settings
from tests import builders as b
from tests.feedback.conftest import iso, patient_view_body
from tests.security.conftest import (
    HOOK_PATH,
    ISS,
    LOCAL,
    OTHER_FHIR,
    OTHER_ISS,
    REDIS_URL,
    Signer,
)
from tests.security.stub_host import stub_host

FEEDBACK = HOOK_PATH + "/feedback"


@pytest.fixture(scope="module")
def other() -> Signer:
    return Signer(ec.generate_private_key(ec.SECP384R1()), "other", "ES384")


@pytest.fixture
def two_clients(ehr_entry, other) -> list[dict]:
    entry = {"iss": OTHER_ISS, "jwks": {"keys": [other.jwk()]}, "fhir_servers": [OTHER_FHIR]}
    return [ehr_entry, entry]


def token_of(signer: Signer, iss: str, path: str = HOOK_PATH) -> str:
    return signer.token(aud=LOCAL + path, iss=iss)


# --- the audience never comes from the Host header ----------------------------------------


class TestPublicBaseUrl:
    def test_the_app_does_not_start_outside_demo_mode_without_it(self, tmp_path, ehr_entry):
        from cds_service.errors import ConfigurationInvalid

        clients = tmp_path / "clients.json"
        clients.write_text(json.dumps([ehr_entry]), "utf-8")
        for trusted in (clients, None):
            with pytest.raises(ConfigurationInvalid, match="RLS_CDS_PUBLIC_BASE_URL"):
                create_app(Settings(data_dir=tmp_path, trusted_clients=trusted))

    def test_serve_says_so_and_exits_2(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("RLS_CDS_DATA_DIR", str(tmp_path))
        monkeypatch.delenv("RLS_CDS_PUBLIC_BASE_URL", raising=False)
        assert cli.main(["serve", "--port", "1"]) == 2
        assert "RLS_CDS_PUBLIC_BASE_URL must be set outside demo mode" in capsys.readouterr().err

    def test_demo_mode_still_starts_without_it(self, tmp_path):
        assert create_app(Settings(data_dir=tmp_path, demo=True)).test_client()

    def test_a_token_for_the_host_the_caller_names_is_refused(self, live, es384):
        service = live(public_base_url="https://cds.example.org")
        forged_host = "attacker.example"
        token = es384.token(aud=f"http://{forged_host}{HOOK_PATH}")
        response = service.post(HOOK_PATH, b.hook_request(), token, {"Host": forged_host})
        assert response.status_code == 401
        assert "aud" in response.json()["message"]
        right = es384.token(aud="https://cds.example.org" + HOOK_PATH)
        called = service.post(HOOK_PATH, b.hook_request(), right, {"Host": forged_host})
        assert called.status_code == 200


# --- replay store quotas --------------------------------------------------------------------


def test_one_issuer_filling_its_replay_share_never_refuses_another(live, two_clients, es384, other):
    """100 records for two issuers: 50 each. The flooding issuer gets 429 (with the time
    until its oldest record expires); the other issuer is answered as always."""
    service = live(two_clients, replay_cache_size=100)
    statuses = [service.hook(es384.token()).status_code for _ in range(60)]
    assert statuses == [200] * 50 + [429] * 10
    refused = service.hook(es384.token())
    assert refused.status_code == 429
    assert 200 < int(refused.headers["Retry-After"]) <= 361  # its tokens live 300 s (+ leeway)
    assert refused.json()["error"] == "too-many-requests"
    assert service.hook(token_of(other, OTHER_ISS)).status_code == 200


def test_per_issuer_shares_hold_in_redis_too(live, two_clients, es384, other, redis_prefix):
    service = live(two_clients, replay_cache_size=100, redis_url=REDIS_URL,
                   redis_prefix=redis_prefix)  # fmt: skip
    statuses = [service.hook(es384.token()).status_code for _ in range(52)]
    assert statuses == [200] * 50 + [429] * 2
    assert service.hook(token_of(other, OTHER_ISS)).status_code == 200


# --- the FHIR access token -------------------------------------------------------------------


@pytest.mark.parametrize(
    "access_token", ["tok€n", "tök", "tok en", "tok\u2028en", "tok\x00en", "tok\ten", "\u00a0"]
)
def test_a_fhir_token_that_is_not_visible_ascii_is_400_and_never_sent(live, es384, access_token):
    with stub_host() as fhir:
        fhir.serve("/fhir/Observation", b.searchset())
        service = live([{"iss": ISS, "jwks": {"keys": [es384.jwk()]},
                         "fhir_servers": [fhir.base + "/fhir"]}])  # fmt: skip
        body = b.hook_request(fhirServer=fhir.base + "/fhir")
        del body["prefetch"]["labs"]
        body["fhirAuthorization"] = {
            "access_token": access_token, "token_type": "Bearer", "expires_in": 300,
            "scope": "patient/*.read", "subject": "rls-cds",
        }  # fmt: skip
        response = service.hook(es384.token(), body)
        assert response.status_code == 400, response.text[:300]
        locs = [d["loc"] for d in response.json()["details"]]
        assert locs == ["fhirAuthorization.access_token"]
        assert access_token not in response.text
        assert fhir.paths() == []


# --- no request text in any error body ------------------------------------------------------

MARK = "zzq-echo-7fa1"


def _echo_cases() -> list[tuple[str, str, object]]:
    request = b.hook_request()
    cases: list[tuple[str, str, object]] = [
        ("hook", HOOK_PATH, {**request, "hook": f"order-sign-{MARK}"}),
        ("service id", f"/cds-services/{MARK}", request),
        ("service id feedback", f"/cds-services/{MARK}/feedback", {"feedback": []}),
        ("hookInstance", HOOK_PATH, {**request, "hookInstance": MARK}),
        ("fhirServer", HOOK_PATH, {**request, "fhirServer": f"https://{MARK}.example/?{MARK}"}),
        ("patientId", HOOK_PATH, {**request, "context": {"userId": "Practitioner/x",
                                                        "patientId": f"{MARK}!"}}),
        ("userId", HOOK_PATH, {**request, "context": {"userId": MARK, "patientId": "p1"}}),
        ("context type", HOOK_PATH, {**request, "context": MARK}),
        ("prefetch type", HOOK_PATH, {**request, "prefetch": MARK}),
        ("not json", HOOK_PATH, f"{{{MARK}".encode()),
        ("card", FEEDBACK, {"feedback": [{"card": MARK, "outcome": "accepted",
                                          "outcomeTimestamp": iso(b.NOW)}]}),
        ("outcome", FEEDBACK, {"feedback": [{"card": "c", "outcome": MARK,
                                             "outcomeTimestamp": iso(b.NOW)}]}),
        ("timestamp", FEEDBACK, {"feedback": [{"card": "c", "outcome": "overridden",
                                               "outcomeTimestamp": MARK}]}),
        ("unknown card", FEEDBACK, {"feedback": [{"card": MARK, "outcome": "overridden",
                                                  "outcomeTimestamp": iso(b.NOW)}]}),
    ]  # fmt: skip
    return cases


@pytest.mark.parametrize(("what", "path", "body"), _echo_cases(), ids=lambda c: str(c)[:20])
def test_no_error_body_echoes_the_request(live, es384, what, path, body):
    service = live()
    token = es384.token(aud=LOCAL + path)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = service.post(path, data, token)
    assert 400 <= response.status_code < 500, (what, response.status_code)
    assert MARK not in response.text, (what, response.text[:300])


def test_the_demo_page_does_not_echo_the_choice_either(tmp_path, serve):
    service = serve(create_app(Settings(demo=True, data_dir=tmp_path, log_level="ERROR")))
    for form in ({"patient": MARK}, {"patient": "rls-ckd", "hook": MARK}):
        response = service.http.post(service.base + "/", data=form, timeout=30)
        assert response.status_code == 400
        assert MARK not in response.text


# --- headers on answers that may hold patient data ------------------------------------------


def test_every_hook_feedback_and_discovery_answer_is_nosniff_and_no_store(live, es384):
    service = live()
    feedback_token = es384.token(aud=LOCAL + FEEDBACK)
    answers = {
        "hook 200": service.hook(es384.token()),
        "hook 401": service.hook(None),
        "hook 400": service.post(HOOK_PATH, b"{}", es384.token()),
        "hook 404": service.post("/cds-services/nope", b"{}"),
        "hook 405": service.get(HOOK_PATH),
        "feedback 400": service.post(FEEDBACK, {"feedback": []}, feedback_token),
        "feedback 404": service.post(FEEDBACK, {"feedback": [
            {"card": "c", "outcome": "overridden", "outcomeTimestamp": iso(b.NOW)}]},
            es384.token(aud=LOCAL + FEEDBACK)),
        "discovery 200": service.get("/cds-services"),
        "openapi 200": service.get("/openapi.json"),
        "metrics 200": service.get("/metrics"),
        "readyz 200": service.get("/readyz"),
    }  # fmt: skip
    for name, response in answers.items():
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
        assert response.headers.get("Cache-Control") == "no-store", name
    assert answers["hook 200"].status_code == 200
    assert answers["feedback 404"].status_code == 404


# --- the feedback quota ----------------------------------------------------------------------


@dataclass
class Ehr:
    signer: Signer
    iss: str

    def token(self, path: str) -> str:
        return token_of(self.signer, self.iss, path)


def issue(service, ehr: Ehr) -> list[dict]:
    response = service.post(HOOK_PATH, patient_view_body(), ehr.token(HOOK_PATH))
    assert response.status_code == 200
    service.app.extensions["rls_cds"].feedback.recorder.flush()
    return response.json()["cards"]


def overrides(cards: list[dict], count: int) -> list[dict]:
    return [
        {"card": cards[n % len(cards)]["uuid"], "outcome": "overridden",
         "overrideReason": {"userComment": f"n{n}"}, "outcomeTimestamp": iso(b.NOW)}
        for n in range(count)
    ]  # fmt: skip


def test_a_client_over_its_feedback_quota_gets_429_with_retry_after(
    live, two_clients, es384, other
):
    service = live(two_clients, feedback_quota_items=5, feedback_quota_window_s=60)
    a, o = Ehr(es384, ISS), Ehr(other, OTHER_ISS)
    cards = issue(service, a)
    assert service.post(FEEDBACK, {"feedback": overrides(cards, 5)}, a.token(FEEDBACK)).ok
    refused = service.post(FEEDBACK, {"feedback": overrides(cards, 1)}, a.token(FEEDBACK))
    assert refused.status_code == 429
    assert refused.json()["error"] == "too-many-requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # a batch larger than what is left is refused whole and uses up nothing
    other_cards = issue(service, o)
    big = service.post(FEEDBACK, {"feedback": overrides(other_cards, 6)}, o.token(FEEDBACK))
    assert big.status_code == 429
    fits = service.post(FEEDBACK, {"feedback": overrides(other_cards, 5)}, o.token(FEEDBACK))
    assert fits.status_code == 200 and fits.json()["stored"] == 5


def test_the_feedback_quota_is_shared_by_instances_through_redis(
    live, es384, ehr_entry, redis_prefix
):
    shared = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix, "feedback_quota_items": 4}
    first, second = live([ehr_entry], **shared), live([ehr_entry], **shared)
    a = Ehr(es384, ISS)
    cards_first, cards_second = issue(first, a), issue(second, a)
    assert first.post(FEEDBACK, {"feedback": overrides(cards_first, 4)}, a.token(FEEDBACK)).ok
    refused = second.post(FEEDBACK, {"feedback": overrides(cards_second, 1)}, a.token(FEEDBACK))
    assert refused.status_code == 429


# --- CORS origins ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "https://*.hospital.org",
        "*",
        "https://ehr*.hospital.org",
        "https://[::1]:8443",
        "https://ehr.hospital.org/app",
        "https://user@ehr.hospital.org",
        "https://ehr.hospital.org:99999",
        "ehr.hospital.org",
        "https://ehr_hospital.org",
    ],
)
def test_an_origin_that_cannot_match_is_refused_at_start_up_with_a_clear_message(origin):
    with pytest.raises(ValidationError) as refused:
        Settings(cors_origins=origin)
    message = str(refused.value)
    assert "wildcard" in message if "*" in origin else "is not an origin" in message


def test_serve_prints_the_wildcard_problem_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLS_CDS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RLS_CDS_CORS_ORIGINS", "https://*.hospital.org")
    assert cli.main(["serve", "--demo", "--port", "1"]) == 2
    error = capsys.readouterr().err
    assert "RLS_CDS_CORS_ORIGINS" in error and "wildcard" in error
    assert "list each one" in error


def test_origins_are_matched_as_browsers_send_them(make_app):
    client = make_app(cors_origins="HTTPS://EHR.Hospital.org").test_client()
    response = client.get("/cds-services", headers={"Origin": "https://ehr.hospital.org"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://ehr.hospital.org"


# --- replay after Redis loses its data -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test alone, without persistence: a restart loses everything."""

    def __init__(self, directory: Path):
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                   "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(self.directory)]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            except redis.RedisError:
                assert time.monotonic() < deadline, "private redis did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_after_redis_loses_its_data_tokens_issued_before_are_refused(live, es384, private_redis):
    service = live(redis_url=private_redis.url)
    seen = es384.token()  # used once, shortly before the loss
    assert service.hook(seen).status_code == 200
    assert service.hook(seen).status_code == 401  # replay
    private_redis.stop()  # a restart without persistence: every record is gone
    private_redis.start()
    time.sleep(1.1)  # the records now begin in a later second than the token was issued
    replayed = service.hook(seen)
    assert replayed.status_code == 401, replayed.text[:300]
    assert "replay records begin" in replayed.json()["message"]
    fresh = es384.token()
    assert service.hook(fresh).status_code == 200
    assert service.hook(fresh).status_code == 401


def test_a_fresh_memory_store_refuses_tokens_issued_before_it(make_app, es384):
    """One instance without Redis: a restart is a data loss too."""
    early = es384.token(iat=int(time.time()) - 5)
    client = make_app().test_client()
    response = client.post(HOOK_PATH, json=b.hook_request(),
                           headers={"Authorization": f"Bearer {early}"})  # fmt: skip
    assert response.status_code == 401
    assert "replay records begin" in response.get_json()["message"]
