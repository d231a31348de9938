"""`make sandbox`: the service and the local FHIR server with the demo patients, both
answering a browser client's CORS (and private-network) preflights, and a patient-view that
fetches everything from that FHIR server gets its cards; `make sandbox AUTH=on`: the same
with JWT checking on, every demo patient's cards for a token of the sandbox's shape."""

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests import builders as b
from tests.integration.fhir_sandbox import FIXTURE_BUNDLES, load_bundles
from tests.sandbox_stack import SANDBOX_ISS, sandbox_client
from tests.security.conftest import Signer
from tests.security.test_sandbox_trust import SANDBOX_JKU, SANDBOX_KID, readme_sandbox_entries
from tests.test_fixtures import EXPECTED_TOPICS

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


def running_stack(*extra: str, fhir_port: int | None = None) -> Iterator[Stack]:
    """`python -m tests.sandbox_stack` with `extra` arguments, until the generator closes;
    then it must stop on SIGTERM with exit 0, leaving nothing listening."""
    port, fhir_port = free_port(), fhir_port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.sandbox_stack", "--port", str(port),
         "--fhir-port", str(fhir_port), "--origins", ORIGIN, *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
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
    except BaseException:  # a failed start, or a fixture body that failed: stop it anyway
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        raise
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    for port_used in (port, fhir_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port_used)) != 0, "left running"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    yield from running_stack()


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


# --- make sandbox AUTH=on ------------------------------------------------------------------

HOOK_PATH = "/cds-services/rls-secondary-causes"
SANDBOX_SHAPE = ROOT / "tests" / "interop" / "sandbox_shapes" / "patient-view.rls-low-ferritin.json"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?Z)?$")


def shifted(value: Any, by: timedelta) -> Any:
    """`value` with every FHIR date and instant moved by `by` (whole days)."""
    if isinstance(value, dict):
        return {key: shifted(item, by) for key, item in value.items()}
    if isinstance(value, list):
        return [shifted(item, by) for item in value]
    if isinstance(value, str) and DATE.match(value):
        if "T" not in value:
            return (datetime.fromisoformat(value) + by).date().isoformat()
        moved = datetime.fromisoformat(value) + by
        return moved.isoformat(timespec="milliseconds" if "." in value else "seconds").replace(
            "+00:00", "Z"
        )
    return value


#: The stack's service evaluates at the real time (a subprocess: no clock to inject), the
#: expected topics are those at builders.NOW: the demo data is moved by the days between the
#: two, so a patient's record is as old on the day the test runs as it was at NOW.
SHIFT = timedelta(days=(datetime.now(UTC).date() - b.NOW.date()).days)


@pytest.fixture(scope="module")
def sandbox_key() -> Signer:
    """A key of the test's own under the sandbox's kid and alg (its private key is public,
    in its repository, and never copied here)."""
    return Signer(ec.generate_private_key(ec.SECP384R1()), SANDBOX_KID, "ES384")


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory, sandbox_key) -> Iterator[Stack]:
    """`--auth --trusted-clients F`, F being the stack's own sandbox entry with the test's
    key in place of the published one; the demo data moved to today (SHIFT)."""
    fhir_port = free_port()
    directory = tmp_path_factory.mktemp("sandbox-auth")
    entry = sandbox_client(f"http://127.0.0.1:{fhir_port}/fhir")
    entry["jwks"] = {"keys": [sandbox_key.jwk()]}
    clients = directory / "trusted-clients.json"
    clients.write_text(json.dumps([entry]), "utf-8")
    for stack in running_stack("--auth", "--trusted-clients", str(clients), fhir_port=fhir_port):
        bundles = []
        for path in FIXTURE_BUNDLES:
            moved = directory / path.name
            moved.write_text(json.dumps(shifted(json.loads(path.read_text("utf-8")), SHIFT)))
            bundles.append(moved)
        load_bundles(stack.fhir, bundles)  # the same ids: the stack's copies are replaced
        yield stack


def sandbox_token(signer: Signer, aud: str) -> str:
    """As the sandbox's jwt-generator.js: ES384, typ, kid, jku; iss, aud (the URL called),
    exp (+300 s), iat, jti (a UUID); no sub."""
    return signer.token(
        aud=aud, iss=SANDBOX_ISS, headers={"jku": SANDBOX_JKU}, jti=str(uuid.uuid4())
    )


def hook(stack: Stack, body: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", "Origin": ORIGIN}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        status, _, answer = request(stack.service + HOOK_PATH, "POST", headers, body)
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())
    return status, json.loads(answer)


def patient_view(stack: Stack, patient: str) -> dict[str, Any]:
    """As the sandbox sends it for an open FHIR server: no fhirAuthorization; no prefetch
    here, so the service fetches everything from the local FHIR server."""
    return {
        "hookInstance": str(uuid.uuid4()),
        "hook": "patient-view",
        "fhirServer": stack.fhir,
        "context": {"patientId": patient, "userId": "Practitioner/COREPRACTITIONER1"},
    }


def card_topics(answer: dict[str, Any]) -> list[str]:
    return [card["source"]["topic"]["code"] for card in answer["cards"]]


def test_the_auth_banner_says_authentication_is_on_and_whom_it_trusts(auth_stack):
    assert "authentication on" in auth_stack.banner and "demo mode" not in auth_stack.banner
    assert re.search(r"trusted iss: +https://sandbox\.cds-hooks\.org\n", auth_stack.banner)


def test_every_demo_patient_gets_its_cards_for_the_sandboxs_token(auth_stack, sandbox_key):
    aud = auth_stack.service + HOOK_PATH
    found = {}
    for patient in EXPECTED_TOPICS:
        status, answer = hook(
            auth_stack, patient_view(auth_stack, patient), sandbox_token(sandbox_key, aud)
        )
        assert status == 200, (patient, answer)
        found[patient] = card_topics(answer)
    assert found == EXPECTED_TOPICS


def test_the_sandboxs_own_full_prefetch_gets_the_cards(auth_stack, sandbox_key):
    """The request the sandbox recorded (tests/interop/sandbox_shapes), its FHIR server
    changed to the local one as the README says."""
    recorded = SANDBOX_SHAPE.read_text("utf-8").replace("{{hookInstance}}", str(uuid.uuid4()))
    body = {**shifted(json.loads(recorded), SHIFT), "fhirServer": auth_stack.fhir}
    assert set(body["prefetch"]) >= {"patient", "conditions", "labs"}
    patient = body["context"]["patientId"]
    token = sandbox_token(sandbox_key, auth_stack.service + HOOK_PATH)
    status, answer = hook(auth_stack, body, token)
    assert status == 200, answer
    assert card_topics(answer) == EXPECTED_TOPICS[patient]


def test_a_call_without_a_token_is_401(auth_stack):
    status, answer = hook(auth_stack, patient_view(auth_stack, "rls-low-ferritin"), None)
    assert status == 401 and answer["error"] == "unauthorized"


def test_a_token_of_the_sandboxs_shape_from_another_key_is_401(auth_stack):
    forger = Signer(ec.generate_private_key(ec.SECP384R1()), SANDBOX_KID, "ES384")
    token = sandbox_token(forger, auth_stack.service + HOOK_PATH)
    status, answer = hook(auth_stack, patient_view(auth_stack, "rls-low-ferritin"), token)
    assert status == 401 and "signature" in answer["message"]


def test_without_trusted_clients_the_stack_trusts_the_readmes_sandbox_entry():
    """The entry the stack writes is the README's, bound to the local FHIR server."""
    (readme, _) = readme_sandbox_entries()
    entry = sandbox_client("http://127.0.0.1:8090/fhir")
    assert entry == {**readme, "fhir_servers": ["http://127.0.0.1:8090/fhir"]}
