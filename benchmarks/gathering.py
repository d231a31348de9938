"""P2: a hook with no prefetch against a FHIR server that takes 50 ms per answer."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import data, fhir_stub
from benchmarks.report import Result
from cds_service.app import create_app
from cds_service.fhir.client import RequestLog
from cds_service.settings import Settings

URL = "/cds-services/rls-secondary-causes"
#: The EHR says it has no weights, orders, procedures or past medications (null: not
#: fetched); the other five prefetch keys are absent, so the service runs five queries.
BODY_PREFETCH = {
    "weight": None,
    "serviceRequests": None,
    "procedures": None,
    "completedMedicationRequests": None,
    "medicationAdministrations": None,
}
QUERIES = 5
SLOPE, ALLOWANCE_S = 1.3, 0.020


def _hook_times(base: str, server: object, parallel: int | None, calls: int) -> tuple[float, float]:
    """Median hook time and median single-query time through the app's own FHIR client.

    `parallel`: RLS_CDS_FHIR_MAX_PARALLEL, None for the default (the deployment's own)."""
    with tempfile.TemporaryDirectory() as tmp:
        pool = {} if parallel is None else {"fhir_max_parallel": parallel}
        settings = Settings(demo=True, log_level="ERROR", data_dir=Path(tmp), **pool)
        app = create_app(settings, clock=lambda: data.NOW)
        client = app.test_client()
        body = data.hook_request(BODY_PREFETCH, fhirServer=base)
        fhir = app.extensions["rls_cds"].evaluator._fhir.client
        hooks, singles = [], []
        for _ in range(calls):
            before = server.requests  # type: ignore[attr-defined]
            started = time.perf_counter()
            response = client.post(URL, json=body)
            hooks.append(time.perf_counter() - started)
            assert response.status_code == 200, response.get_data(as_text=True)
            assert server.requests - before == QUERIES  # type: ignore[attr-defined]
            started = time.perf_counter()
            log: list[RequestLog] = []
            fhir.get(base, f"Patient/{data.PATIENT_ID}", None, time.monotonic() + 5, log)
            singles.append(time.perf_counter() - started)
        app.extensions["rls_cds"].feedback.recorder.flush()
    return statistics.median(hooks[1:]), statistics.median(singles[1:])


def run(calls: int = 15) -> list[Result]:
    with fhir_stub.running() as server:
        base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
        parallel, one = _hook_times(base, server, parallel=None, calls=calls)
        # Measured side by side, not in rounds (a pool share below 5 made 2 rounds once).
        assert server.peak == QUERIES, f"at most {server.peak} queries at once"  # type: ignore[attr-defined]
        sequential, one_seq = _hook_times(base, server, parallel=1, calls=max(5, calls // 3))
    limit = SLOPE * one + ALLOWANCE_S
    notes = [
        "patient-view with no prefetch data against a local FHIR stub (127.0.0.1) that",
        f"waits {fhir_stub.DELAY_S * 1000:.0f} ms before every answer; the request marks",
        "weight, orders, procedures and past medications as null (no data), so 5 queries "
        "run: Patient,",
        "Condition, Observation, MedicationRequest, MedicationStatement. One query is a",
        "GET of the Patient through the service's own client and session. Medians of",
        f"{calls} calls.",
    ]
    return [
        Result(
            "P2",
            "hook with 5 queries at 50 ms each, in parallel, vs one query",
            f"{parallel * 1000:.0f} ms = {parallel / one:.2f}x one query ({one * 1000:.0f} ms)",
            f"<= 1.3x + 20 ms = {limit * 1000:.0f} ms",
            parallel <= limit,
            notes,
        ),
        Result(
            "P2s",
            "the same with RLS_CDS_FHIR_MAX_PARALLEL=1 (sequential)",
            f"{sequential * 1000:.0f} ms = {sequential / one_seq:.2f}x one query",
            "(contrast)",
            None,
            ["The same calls with one FHIR request in flight at a time."],
        ),
    ]
