"""The FHIR server that integration tests talk to.

By default a local FHIR R4 server is started from ``tests/fhir_sandbox`` (Medplum's
open-source FHIR router on Node, in memory), installed by ``make`` (``npm ci``),
and loaded with every transaction Bundle in ``fhir_fixtures/patients``. With
``RLS_CDS_TEST_FHIR_BASE`` set, that server is used instead (the fixtures are loaded
into it too) and Node is not started.

Register the fixture where it is needed::

    from tests.integration.fhir_sandbox import fhir_server  # noqa: F401

A session-scoped fixture imported into several test modules gives one server per module;
import it in a conftest.py to share a single server across modules.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_DIR = ROOT / "tests" / "fhir_sandbox"
FIXTURE_BUNDLES = sorted((ROOT / "fhir_fixtures" / "patients").glob("*.json"))

BASE_URL_ENV = "RLS_CDS_TEST_FHIR_BASE"
SANDBOX_ENV_VARS = ("SANDBOX_REQUIRE_TOKEN", "SANDBOX_DELAY_MS", "SANDBOX_CORS_ORIGINS")
START_TIMEOUT_S = 60.0
FHIR_JSON = "application/fhir+json"
_LISTENING = re.compile(r"^listening on (http://\S+)\s*$")


@dataclass(frozen=True)
class FhirServer:
    base_url: str
    process: subprocess.Popen[str] | None = None


def ensure_installed() -> None:
    """Fail with the command to run when the sandbox's npm packages are not installed (or
    older than package-lock.json): `make test` installs them with ``npm ci``, never a test."""
    marker = SANDBOX_DIR / "node_modules" / ".package-lock.json"
    lock = SANDBOX_DIR / "package-lock.json"
    if not marker.is_file() or marker.stat().st_mtime < lock.stat().st_mtime:
        raise RuntimeError(
            f"the FHIR sandbox's npm packages are missing or stale in {SANDBOX_DIR}: run "
            "`make test` (or `cd tests/fhir_sandbox && npm ci`)"
        )


def _read_lines(stream, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def start_sandbox(
    env: dict[str, str] | None = None, port: int = 0
) -> tuple[subprocess.Popen[str], str]:
    """Start one sandbox on `port` (0: a free one); return the process and its base URL.

    ``env`` adds variables such as SANDBOX_REQUIRE_TOKEN, SANDBOX_DELAY_MS or
    SANDBOX_CORS_ORIGINS; those are never inherited from the calling environment. The
    caller stops it with stop_sandbox(). The server's request log (stderr) goes to a
    temporary file, ``process.log_path``.
    """
    ensure_installed()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH: the FHIR sandbox needs Node.js 20.19+")
    child_env = {k: v for k, v in os.environ.items() if k not in SANDBOX_ENV_VARS}
    child_env.update(env or {})
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
        prefix="fhir-sandbox-", suffix=".log", delete=False
    )
    process = subprocess.Popen(
        [node, "server.mjs", "--port", str(port)],
        cwd=SANDBOX_DIR,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    log.close()
    process.log_path = log.name  # type: ignore[attr-defined]
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.01))
        except queue.Empty:
            line = None
            remaining = 0
        if line is not None and (match := _LISTENING.match(line)):
            return process, match.group(1)
        if line is None or remaining <= 0:
            exit_code = process.poll()
            _terminate(process)
            output = Path(log.name).read_text()
            stop_sandbox(process)
            raise RuntimeError(
                f"FHIR sandbox did not start within {START_TIMEOUT_S:.0f} s "
                f"(exit code {exit_code}):\n{output}"
            )


def _terminate(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def stop_sandbox(process: subprocess.Popen[str]) -> None:
    """Stop a sandbox from start_sandbox() and remove its log file."""
    _terminate(process)
    if process.stdout is not None:
        process.stdout.close()
    log_path = getattr(process, "log_path", None)
    if log_path:
        Path(log_path).unlink(missing_ok=True)


def load_bundles(
    base_url: str, paths: Iterable[Path], headers: dict[str, str] | None = None
) -> None:
    """POST each transaction Bundle to the server base; every entry must succeed."""
    with requests.Session() as session:
        for path in paths:
            response = session.post(
                base_url,
                data=Path(path).read_bytes(),
                headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, **(headers or {})},
                timeout=60,
            )
            assert response.status_code == 200, (
                f"{path.name}: HTTP {response.status_code}: {response.text[:2000]}"
            )
            result = response.json()
            assert result.get("type") == "transaction-response", f"{path.name}: {result}"
            statuses = [entry.get("response", {}).get("status", "") for entry in result["entry"]]
            failed = [s for s in statuses if not s.strip().startswith("2")]
            assert not failed, f"{path.name}: entry statuses {statuses}"


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[FhirServer]:
    external = os.environ.get(BASE_URL_ENV, "").strip()
    if external:
        base_url = external.rstrip("/")
        load_bundles(base_url, FIXTURE_BUNDLES)
        yield FhirServer(base_url=base_url)
        return
    process, base_url = start_sandbox()
    try:
        load_bundles(base_url, FIXTURE_BUNDLES)
        yield FhirServer(base_url=base_url, process=process)
    finally:
        stop_sandbox(process)
