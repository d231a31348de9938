"""``make sandbox``: the service and a FHIR server holding the demo patients, for a browser
client such as the CDS Hooks Sandbox, on this machine, offline.

Starts the local FHIR server (tests/fhir_sandbox, Medplum's router in memory) with every
bundle of fhir_fixtures/patients loaded, and ``rls-cds serve --demo``; both send CORS
headers to the given origins (and allow their private-network preflights). Prints the URLs
to paste into the sandbox, then runs until Ctrl-C (or SIGTERM) and stops both.

    python -m tests.sandbox_stack [--port 8080] [--fhir-port 8090] [--origins O1,O2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="the CDS service (8080)")
    parser.add_argument("--fhir-port", type=int, default=8090, help="the FHIR server (8090)")
    parser.add_argument("--origins", default=DEFAULT_ORIGINS, help="browser origins for CORS")
    args = parser.parse_args(argv)
    origins = ",".join(o.strip().rstrip("/") for o in args.origins.split(",") if o.strip())

    fhir, fhir_base = start_sandbox({"SANDBOX_CORS_ORIGINS": origins}, port=args.fhir_port)
    service = None
    try:
        load_bundles(fhir_base, FIXTURE_BUNDLES)
        service = subprocess.Popen(
            [str(Path(sys.executable).with_name("rls-cds")), "serve", "--demo",
             "--host", "127.0.0.1", "--port", str(args.port)],
            env={**os.environ, "RLS_CDS_CORS_ORIGINS": origins},
        )  # fmt: skip
        base = f"http://127.0.0.1:{args.port}"
        _wait_for(f"{base}/healthz", service)
        print(_banner(base, fhir_base, origins), flush=True)
        _run_until_stopped(service)
    finally:
        if service is not None and service.poll() is None:
            service.terminate()
            service.wait(timeout=15)
        stop_sandbox(fhir)
    return 0


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


def _banner(base: str, fhir_base: str, origins: str) -> str:
    return "\n".join(
        [
            "sandbox stack ready (demo mode: no authentication; synthetic patients only)",
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
