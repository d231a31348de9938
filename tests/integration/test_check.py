"""`rls-cds check` against the real local FHIR server (tests/fhir_sandbox): exit 1 for a
patient that does not exist, for required data not read (unless --allow-partial) and for
a refused hook, with the per-query table and a hint per failing status kept on stderr."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests

from cds_service.cli import main
from tests.fixture_requests import DRAFTS
from tests.integration.fhir_sandbox import start_sandbox, stop_sandbox

NOW = "2026-11-28T12:00:00Z"
PATIENT_VIEW_TOPICS = 15


def check(capsys, server: str, patient: str, *extra: str) -> tuple[int, str, str]:
    code = main(["check", "--fhir-server", server, "--patient", patient, "--now", NOW, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_patient_that_does_not_exist_exits_1_naming_it_and_the_server(capsys, fhir_server):
    base = fhir_server.base_url
    code, out, err = check(capsys, base, "no-such-patient")
    assert code == 1 and out == ""
    assert err.rstrip().endswith(f"rls-cds: Patient/no-such-patient not found at {base}")
    assert "      404" in err and "/Patient/no-such-patient" in err  # the table is there
    assert "hint: not found: check --patient" in err


def test_a_patient_without_rls_exits_0_and_explain_says_why_no_card(capsys, fhir_server):
    code, out, err = check(capsys, fhir_server.base_url, "no-rls", "--explain")
    assert code == 0 and json.loads(out) == {"cards": []}
    assert "cards: 0" in err
    reason = "no active RLS condition: rules not run (conditions read: 2, 1 RLS, none active)"
    assert err.count(reason) == PATIENT_VIEW_TOPICS


def test_order_sign_with_draft_orders_checks_the_drafts(capsys, fhir_server):
    drafts = DRAFTS / "rls-gabapentin-ckd.pregabalin.json"
    code, out, err = check(
        capsys, fhir_server.base_url, "rls-gabapentin-ckd", "--hook", "order-sign",
        "--draft-orders", str(drafts),
    )  # fmt: skip
    assert code == 0
    (card,) = json.loads(out)["cards"]
    assert card["source"]["topic"]["code"] == "gabapentinoid-renal-dose"
    assert card["indicator"] == "critical"
    assert "critical gabapentinoid-renal-dose" in err


def test_an_order_hook_without_draft_orders_is_an_input_error(capsys, fhir_server):
    code, _, err = check(capsys, fhir_server.base_url, "rls-ckd", "--hook", "order-select")
    assert code == 2 and "needs --draft-orders" in err


class _FailingLabs(BaseHTTPRequestHandler):
    """Forwards GETs to the real FHIR server, but answers every Observation search 503:
    a server whose lab service is down while the rest of the record reads."""

    upstream = ""

    def do_GET(self) -> None:
        if urlsplit(self.path).path.endswith("/Observation"):
            self._answer(503, b'{"resourceType": "OperationOutcome"}')
            return
        upstream = requests.get(self.upstream + self.path.removeprefix("/fhir"), timeout=30)
        self._answer(upstream.status_code, upstream.content)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def labs_down(fhir_server) -> Iterator[str]:
    handler = type("Handler", (_FailingLabs,), {"upstream": fhir_server.base_url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/fhir"
    finally:
        server.shutdown()
        server.server_close()


def test_a_partial_read_exits_1_naming_the_key_unless_allowed(capsys, labs_down):
    code, out, err = check(capsys, labs_down, "rls-low-ferritin", "--explain")
    assert code == 1 and out == ""
    assert "      503" in err and "not read: labs (HTTP 503)" in err
    assert "hint: the FHIR server failed (5xx): see its logs" in err
    assert (
        "iron-below-target: labs not read (the FHIR server answered HTTP 503): rule not run"
    ) in err
    assert err.rstrip().splitlines()[-1] == (
        "rls-cds: required data not read: labs; the cards may miss what it holds "
        "(--allow-partial accepts this)"
    )
    code, out, err = check(capsys, labs_down, "rls-low-ferritin", "--allow-partial")
    assert code == 0 and json.loads(out) == {"cards": []}
    assert "not read: labs (HTTP 503)" in err


@pytest.fixture(scope="module")
def slow_server() -> Iterator[str]:
    """A FHIR server slower than the hook's deadline: every key is unread."""
    process, base_url = start_sandbox({"SANDBOX_DELAY_MS": "1500"})
    try:
        yield base_url
    finally:
        stop_sandbox(process)


def test_nothing_read_before_the_deadline_exits_1(capsys, monkeypatch, slow_server):
    monkeypatch.setenv("RLS_CDS_HOOK_DEADLINE_S", "0.5")
    code, out, err = check(capsys, slow_server, "rls-low-ferritin", "--explain")
    assert code == 1 and out == ""
    assert "not read: conditions (the hook's deadline passed)" in err
    assert "hint: no answer in time" in err
    assert "conditions not read (the FHIR server did not answer in time): rules not run" in err
    assert "rls-cds: required data not read: conditions, labs," in err


@pytest.fixture(scope="module")
def token_server() -> Iterator[str]:
    process, base_url = start_sandbox({"SANDBOX_REQUIRE_TOKEN": "the-right-token"})
    try:
        yield base_url
    finally:
        stop_sandbox(process)


def test_a_412_keeps_the_query_table_with_a_hint_to_pass_a_token(capsys, token_server):
    code, out, err = check(capsys, token_server, "rls-low-ferritin", "--token", "wrong-token")
    assert code == 1 and out == ""
    lines = err.rstrip().splitlines()
    assert lines[0] == "FHIR queries:"
    assert sum("      401" in line for line in lines) == 10  # one per prefetch key
    assert "hint: the FHIR server wants a token: pass --token (a bearer token it accepts)" in err
    assert lines[-1].startswith("rls-cds: 412 prefetch data is missing") and len(lines[-1]) < 300
    assert "wrong-token" not in err
