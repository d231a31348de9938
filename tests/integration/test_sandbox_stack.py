"""`make sandbox`: the service and the local FHIR server with the demo patients, both
answering a browser client's CORS (and private-network) preflights, and a patient-view that
fetches everything from that FHIR server gets its cards."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "http://localhost:3000"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization",
    "Access-Control-Request-Private-Network": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Stack:
    service: str
    fhir: str
    banner: str


def request(url: str, method: str = "GET", headers=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=15) as response:
        return response.status, dict(response.headers), response.read()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    port, fhir_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.sandbox_stack", "--port", str(port),
         "--fhir-port", str(fhir_port), "--origins", ORIGIN],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while not any("Ctrl-C stops both" in line for line in lines):
        line = process.stdout.readline()
        assert line or process.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        lines.append(line)
    banner = "".join(lines)
    service = re.search(r"CDS services \(discovery\): (\S+)/cds-services", banner).group(1)
    fhir = re.search(r"FHIR server: +(\S+)", banner).group(1)
    yield Stack(service, fhir, banner)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    for port_used in (port, fhir_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port_used)) != 0, "left running"


def test_the_banner_names_the_urls_and_the_demo_patients(stack):
    assert stack.fhir.endswith("/fhir")
    assert "rls-low-ferritin" in stack.banner and "no-rls" in stack.banner


def test_fhir_server_answers_a_browser_preflight_with_private_network_access(stack):
    status, headers, _ = request(f"{stack.fhir}/Patient/rls-low-ferritin", "OPTIONS", PREFLIGHT)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    assert headers["Access-Control-Allow-Private-Network"] == "true"


def test_fhir_server_reads_carry_cors_headers_for_the_origin_only(stack):
    _, headers, body = request(f"{stack.fhir}/Patient/rls-low-ferritin", headers={"Origin": ORIGIN})
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert json.loads(body)["id"] == "rls-low-ferritin"
    _, other, _ = request(
        f"{stack.fhir}/Patient/rls-low-ferritin", headers={"Origin": "https://x.example"}
    )
    assert "Access-Control-Allow-Origin" not in other


def test_fhir_server_refuses_a_preflight_from_another_origin(stack):
    with pytest.raises(urllib.error.HTTPError) as refused:
        request(f"{stack.fhir}/Patient", "OPTIONS", {**PREFLIGHT, "Origin": "https://x.example"})
    assert refused.value.code == 403
    assert "Access-Control-Allow-Origin" not in refused.value.headers


def test_service_answers_the_preflight_and_fetches_from_the_fhir_server(stack):
    hook = f"{stack.service}/cds-services/rls-secondary-causes"
    preflight = {**PREFLIGHT, "Access-Control-Request-Method": "POST"}
    status, headers, _ = request(hook, "OPTIONS", preflight)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Private-Network"] == "true"
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": stack.fhir,
        "context": {"userId": "Practitioner/example", "patientId": "rls-pad"},
    }
    status, headers, answer = request(
        hook, "POST", {"Content-Type": "application/json", "Origin": ORIGIN}, body
    )
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ORIGIN
    topics = {card["source"]["topic"]["code"] for card in json.loads(answer)["cards"]}
    # (a card from the problem list: it does not age with the demo labs' dates)
    assert "peripheral-arterial-disease" in topics
