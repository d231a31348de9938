"""Issue 16, point 7: what the red team found holding, now held by tests over HTTP.

``crit``, keys embedded in or pointed to by the token (``jwk``, ``x5c``, ``x5u``), a second
Authorization header, a token in the query string or a cookie, an oversized token (431),
and a sweep for tokens and patient ids in the database, /metrics, the logs and every
response body (not only the logs).
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cds_service import gunicorn_conf
from cds_service.auth.devkeys import public_jwk
from cds_service.logs import JsonFormatter
from tests import builders as b
from tests.feedback.conftest import iso
from tests.security.conftest import HOOK_PATH, LOCAL, Signer
from tests.security.stub_host import stub_host


@pytest.fixture(scope="module")
def attacker() -> Signer:
    return Signer(ec.generate_private_key(ec.SECP384R1()), "attacker", "ES384")


def self_signed(signer: Signer) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ehr.example.org")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(signer.key.public_key()).serial_number(1)
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .sign(signer.key, hashes.SHA384())
    )  # fmt: skip
    from cryptography.hazmat.primitives.serialization import Encoding

    return base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()


def refused(response, status: int = 401) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.json()["error"] in ("unauthorized", "invalid-request")
    assert "WWW-Authenticate" in response.headers


class TestHeaderParameters:
    @pytest.mark.parametrize("crit", [["exp"], ["b64"], ["urn:example:unknown"], []])
    def test_crit_is_refused_even_when_the_signature_is_good(self, live, es384, crit):
        """PyJWT refuses a crit header (RFC 7515, 4.1.11): no extension is implemented."""
        refused(live().hook(es384.token(headers={"crit": crit})))

    def test_an_embedded_jwk_of_the_attacker_is_never_used(self, live, attacker):
        token = attacker.token(headers={"jwk": public_jwk(attacker.key)})
        refused(live().hook(token))

    def test_an_embedded_jwk_is_refused_even_with_the_clients_own_key(self, live, es384):
        response = live().hook(es384.token(headers={"jwk": es384.jwk()}))
        refused(response)
        assert "its own key" in response.json()["message"]

    def test_x5u_is_never_fetched(self, live, attacker):
        with stub_host() as keys:
            keys.serve("/cert.pem", {"keys": [attacker.jwk()]})
            token = attacker.token(headers={"x5u": keys.base + "/cert.pem"})
            refused(live().hook(token))
            assert keys.paths() == []

    def test_x5c_of_the_attacker_is_never_used(self, live, attacker, es384):
        refused(live().hook(attacker.token(headers={"x5c": [self_signed(attacker)]})))
        refused(live().hook(es384.token(headers={"x5c": [self_signed(es384)]})))


def raw_post(base: str, path: str, headers: list[tuple[str, str]], body: bytes):
    """A POST with exactly these header lines (http.client sends duplicates as given)."""
    split = urlsplit(base)
    connection = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    try:
        connection.putrequest("POST", path)
        for name, value in [*headers, ("Content-Length", str(len(body)))]:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


class TestWhereTheTokenComesFrom:
    def test_two_authorization_headers_are_400_whichever_comes_first(self, live, es384):
        service = live()
        body = json.dumps(b.hook_request()).encode()
        for pair in ([es384.token(), "garbage"], ["garbage", es384.token()]):
            headers = [("Content-Type", "application/json")]
            headers += [("Authorization", f"Bearer {value}") for value in pair]
            status, answer_headers, answer = raw_post(service.base, HOOK_PATH, headers, body)
            assert status == 400, answer[:300]
            assert json.loads(answer)["error"] == "invalid-request"
            assert 'error="invalid_request"' in answer_headers["WWW-Authenticate"]

    def test_a_token_in_the_query_string_is_400_and_never_used(self, live, es384):
        service = live()
        path = f"{HOOK_PATH}?access_token={es384.token()}"
        response = service.post(path, b.hook_request())
        assert response.status_code == 400
        assert "Authorization header only" in response.json()["message"]
        with_header = service.post(path, b.hook_request(), es384.token())
        assert with_header.status_code == 400  # two ways at once: refused too

    def test_a_token_in_a_cookie_is_never_read(self, live, es384):
        service = live()
        for name in ("access_token", "token", "Authorization"):
            response = service.post(HOOK_PATH, b.hook_request(),
                                    headers={"Cookie": f"{name}={es384.token()}"})  # fmt: skip
            refused(response)


class TestOversizedTokens:
    def test_a_token_longer_than_any_client_jwt_is_431(self, live):
        service = live()
        response = service.hook("x" * 9000)
        assert response.status_code == 431
        assert response.json()["error"] == "request-header-fields-too-large"
        assert "x" * 100 not in response.text

    def test_a_header_beyond_the_servers_line_bound_is_431_too(self, live):
        assert live().hook("x" * 70_000).status_code == 431

    def test_the_longest_token_read_is_still_read(self, live):
        from cds_service.api.security import MAX_AUTHORIZATION_CHARS

        longest = "x" * (MAX_AUTHORIZATION_CHARS - len("Bearer "))
        refused(live().hook(longest))  # 401: read, and not a JWT

    def test_gunicorn_lets_every_header_the_app_reads_through(self):
        from cds_service.api.security import MAX_AUTHORIZATION_CHARS

        longest_line = len("Authorization: ") + MAX_AUTHORIZATION_CHARS
        assert longest_line <= gunicorn_conf.limit_request_field_size


# --- the sweep -------------------------------------------------------------------------------

PATIENT = "zz-sweep-patient-5150"
ACCESS_TOKEN = "zz-sweep-fhir-token-8d7c6b"


def test_no_token_and_no_patient_id_in_the_database_metrics_logs_or_answers(
    live, es384, ehr_entry, tmp_path
):
    """A day's traffic (hooks fetching from the FHIR server with the EHR's token, feedback,
    refusals, errors), then every table and column of the store, /metrics, every log line
    and every answer's body and headers are searched for the tokens (whole, and each
    part), the FHIR access token and the patient id."""
    service_log = logging.getLogger("cds_service")
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonFormatter())
    service_log.addHandler(handler)
    answers: list[tuple[str, str]] = []
    tokens: list[str] = []

    def keep(response) -> None:
        answers.append((response.text, json.dumps(dict(response.headers))))

    try:
        with stub_host() as fhir:
            ferritin = b.observation(b.FERRITIN, 38, "ng/mL", patient_id=PATIENT)
            fhir.serve("/fhir/Observation", b.searchset(ferritin))
            entry = {**ehr_entry, "fhir_servers": [fhir.base + "/fhir"]}
            service = live([entry], data_dir=tmp_path)
            body = b.hook_request(
                b.prefetch(b.rls(patient_id=PATIENT), b.kidney_ok(patient_id=PATIENT),
                           b.medication_request(text="Diphenhydramine 25 mg tablet",
                                                patient_id=PATIENT),
                           with_patient=b.patient(PATIENT)),
                context={"userId": "Practitioner/example", "patientId": PATIENT},
                fhirServer=fhir.base + "/fhir",
                fhirAuthorization={"access_token": ACCESS_TOKEN, "token_type": "Bearer",
                                   "expires_in": 300, "scope": "patient/*.read",
                                   "subject": "rls-cds", "patient": PATIENT},
            )  # fmt: skip
            del body["prefetch"]["labs"]
            token = es384.token()
            tokens.append(token)
            first = service.hook(token, body)
            assert first.status_code == 200, first.text[:300]
            assert fhir.seen[0].headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
            keep(first)
            keep(service.hook(token, body))  # replay: 401
            keep(service.hook(token + "x", body))  # bad signature: 401
            keep(service.hook(es384.token(), {**body, "hook": "order-sign"}))  # 400
            service.app.extensions["rls_cds"].feedback.recorder.flush()
            cards = first.json()["cards"]
            path = HOOK_PATH + "/feedback"
            items = [{"card": c["uuid"], "outcome": "overridden",
                      "outcomeTimestamp": iso(b.NOW)} for c in cards]  # fmt: skip
            feedback_token = es384.token(aud=LOCAL + path)
            tokens.append(feedback_token)
            keep(service.post(path, {"feedback": items}, feedback_token))
            keep(service.post(path, {"feedback": [*items[:1], {**items[0], "card": PATIENT}]},
                              es384.token(aud=LOCAL + path)))  # 404  # fmt: skip
            keep(service.get("/cds-services"))
            metrics = service.get("/metrics").text
    finally:
        service_log.removeHandler(handler)
    database = sqlite3.connect(tmp_path / "rls-cds.sqlite3")
    try:
        stored = []
        for (table,) in database.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            stored += [repr(row) for row in database.execute(f'SELECT * FROM "{table}"')]
    finally:
        database.close()
    assert any("overridden" in row for row in stored)  # the store was used
    secrets = [ACCESS_TOKEN, *tokens, *(part for t in tokens for part in t.split("."))]
    places = {
        "database": "\n".join(stored),
        "metrics": metrics,
        "logs": written.getvalue(),
        "answers": "\n".join(text + headers for text, headers in answers[1:]),
        "first answer headers": answers[0][1],
    }
    for place, text in places.items():
        for secret in secrets:
            assert secret not in text, (place, secret[:12])
    for place in ("database", "metrics", "logs", "answers"):
        assert PATIENT not in places[place], place
    # (the first answer's cards name the patient in their FHIR suggestions: that is their job)


def test_under_gunicorn_too(tmp_path, es384, ehr_entry):
    """The production server (``rls-cds serve --prod``, gunicorn): a second Authorization
    header (gunicorn joins them with a comma) is 400, a token too long for the app is 431
    from the app and one too long for gunicorn 431 from gunicorn, and the answers carry
    nosniff and no-store."""
    from tests.integration.test_packaging_and_serve import start_prod, wait_until_healthy

    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps([ehr_entry]), "utf-8")
    public = "https://cds.example.org"
    command = ["rls-cds", "serve", "--prod", "--host", "x", "--port", "0"]
    server, base = start_prod(
        command, tmp_path, RLS_CDS_TRUSTED_CLIENTS=str(clients), RLS_CDS_PUBLIC_BASE_URL=public
    )
    try:
        wait_until_healthy(base, server)
        body = json.dumps(b.hook_request()).encode()
        json_type = [("Content-Type", "application/json")]
        good = es384.token(aud=public + HOOK_PATH)
        status, headers, _ = raw_post(
            base, HOOK_PATH, [*json_type, ("Authorization", f"Bearer {good}")], body
        )
        assert status == 200
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
        twice = [("Authorization", f"Bearer {es384.token(aud=public + HOOK_PATH)}")] * 2
        assert raw_post(base, HOOK_PATH, [*json_type, *twice], body)[0] == 400
        long = [("Authorization", "Bearer " + "x" * 8001)]
        status, _, answer = raw_post(base, HOOK_PATH, [*json_type, *long], body)
        assert status == 431 and b"request-header-fields-too-large" in answer
        longer = [("Authorization", "Bearer " + "x" * 20_000)]
        assert raw_post(base, HOOK_PATH, [*json_type, *longer], body)[0] == 431
    finally:
        server.terminate()
        server.communicate(timeout=30)
