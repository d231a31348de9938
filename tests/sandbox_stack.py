"""``make sandbox``: the service and a FHIR server holding the demo patients, for a browser
client such as the CDS Hooks Sandbox, on this machine, offline.

Starts the local FHIR server (tests/fhir_sandbox, Medplum's router in memory) with every
bundle of fhir_fixtures/patients loaded, and ``rls-cds serve --demo``; both send CORS
headers to the given origins (and allow their private-network preflights). Prints the URLs
to paste into the sandbox, then runs until Ctrl-C (or SIGTERM) and stops both.

With ``--auth`` the service checks JWTs instead (as in production): it trusts the CDS Hooks
Sandbox by the key the sandbox publishes, held inline (its ``jku`` is then ignored, so this
works offline), may fetch from the local FHIR server only, checks ``aud`` against
http://127.0.0.1:PORT and keeps its replay records in memory. ``--trusted-clients FILE``
trusts the clients of FILE instead (tests: a key of their own in the sandbox's shape).

    python -m tests.sandbox_stack [--port 8080] [--fhir-port 8090] [--origins O1,O2]
                                  [--auth [--trusted-clients FILE]]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.integration.fhir_sandbox import (
    FIXTURE_BUNDLES,
    load_bundles,
    start_sandbox,
    stop_sandbox,
)

#: The public CDS Hooks Sandbox and its development server (webpack's default port).
DEFAULT_ORIGINS = "https://sandbox.cds-hooks.org,http://localhost:8080,http://127.0.0.1:8080"
READY_TIMEOUT_S = 60.0
#: The `iss` every CDS Hooks Sandbox sends, public or self-hosted (hard-coded in its
#: src/retrieve-data-helpers/jwt-generator.js).
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
#: The key set the sandbox publishes at its jku; the one copy in the project (source in
#: tests/corpus/README.md). The README's sandbox entries are checked against it.
SANDBOX_JWKS = Path(__file__).resolve().parent / "corpus" / "cds-hooks" / "sandbox-jwks.json"
#: Settings of the calling environment that would change what --auth starts.
CLEARED_FOR_AUTH = ("RLS_CDS_DEMO", "REDIS_URL", "RLS_CDS_REDIS_URL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="the CDS service (8080)")
    parser.add_argument("--fhir-port", type=int, default=8090, help="the FHIR server (8090)")
    parser.add_argument("--origins", default=DEFAULT_ORIGINS, help="browser origins for CORS")
    parser.add_argument(
        "--auth", action="store_true", help="check JWTs (trusting the CDS Hooks Sandbox's key)"
    )
    parser.add_argument(
        "--trusted-clients", type=Path, metavar="FILE", help="with --auth: trust these instead"
    )
    args = parser.parse_args(argv)
    if args.trusted_clients is not None and not args.auth:
        parser.error("--trusted-clients needs --auth")
    origins = ",".join(o.strip().rstrip("/") for o in args.origins.split(",") if o.strip())

    fhir, fhir_base = start_sandbox({"SANDBOX_CORS_ORIGINS": origins}, port=args.fhir_port)
    service = None
    scratch = tempfile.TemporaryDirectory(prefix="rls-cds-sandbox-")
    try:
        load_bundles(fhir_base, FIXTURE_BUNDLES)
        base = f"http://127.0.0.1:{args.port}"
        env = {**os.environ, "RLS_CDS_CORS_ORIGINS": origins}
        command = [str(Path(sys.executable).with_name("rls-cds")), "serve"]
        clients = None
        if args.auth:
            clients = args.trusted_clients or _write_sandbox_client(Path(scratch.name), fhir_base)
            env = {k: v for k, v in env.items() if k not in CLEARED_FOR_AUTH}
            env |= {"RLS_CDS_TRUSTED_CLIENTS": str(clients), "RLS_CDS_PUBLIC_BASE_URL": base}
        else:
            command.append("--demo")
        command += ["--host", "127.0.0.1", "--port", str(args.port)]
        service = subprocess.Popen(command, env=env)
        _wait_for(f"{base}/healthz", service)  # the service has checked the clients file
        trusted = None if clients is None else _issuers(clients)
        print(_banner(base, fhir_base, origins, trusted), flush=True)
        _run_until_stopped(service)
    finally:
        if service is not None and service.poll() is None:
            service.terminate()
            service.wait(timeout=15)
        stop_sandbox(fhir)
        scratch.cleanup()
    return 0


def sandbox_client(fhir_base: str) -> dict[str, object]:
    """The README's trusted-clients entry for the sandbox, bound to the local FHIR server:
    its published key inline (so its jku is ignored and nothing is fetched from its site)."""
    jwks = json.loads(SANDBOX_JWKS.read_text("utf-8"))
    return {"iss": SANDBOX_ISS, "jwks": jwks, "fhir_servers": [fhir_base]}


def _write_sandbox_client(directory: Path, fhir_base: str) -> Path:
    path = directory / "trusted-clients.json"
    path.write_text(json.dumps([sandbox_client(fhir_base)], indent=2) + "\n", "utf-8")
    return path


def _issuers(clients: Path) -> list[str]:
    """The issuers of a trusted-clients file the service has started with (it stops at
    start-up on a file it cannot use), for the banner."""
    return [str(entry["iss"]) for entry in json.loads(clients.read_text("utf-8"))]


def _wait_for(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the service stopped (exit {process.returncode})") from None
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer in {READY_TIMEOUT_S:.0f} s") from None
            time.sleep(0.2)


def _patients() -> list[str]:
    ids = []
    for path in FIXTURE_BUNDLES:
        bundle = json.loads(path.read_text("utf-8"))
        ids += [
            e["resource"]["id"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Patient"
        ]
    return ids


def _banner(base: str, fhir_base: str, origins: str, trusted: list[str] | None) -> str:
    if trusted is None:
        mode = ["sandbox stack ready (demo mode: no authentication; synthetic patients only)"]
    else:
        mode = [
            "sandbox stack ready (authentication on: JWTs checked; synthetic patients only)",
            f"  trusted iss:              {', '.join(trusted)}",
            f"  token aud:                {base}/cds-services/<id> (register the URL below)",
        ]
    return "\n".join(
        [
            *mode,
            f"  CDS services (discovery): {base}/cds-services",
            f"  FHIR server:              {fhir_base}",
            f"  patients:                 {', '.join(_patients())}",
            f"  CORS origins:             {origins}",
            "In the CDS Hooks Sandbox: change the FHIR server to the URL above, add the CDS",
            "services URL, then change the patient to one of the ids above. Ctrl-C stops both.",
        ]
    )


def _run_until_stopped(service: subprocess.Popen) -> None:
    stop = {"asked": False}

    def ask(signum: int, frame: object) -> None:
        stop["asked"] = True

    signal.signal(signal.SIGTERM, ask)
    signal.signal(signal.SIGINT, ask)
    while not stop["asked"] and service.poll() is None:
        time.sleep(0.2)


if __name__ == "__main__":
    raise SystemExit(main())
