"""A local FHIR server for P2: answers the patient-view queries after a fixed delay."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

from benchmarks import data

DELAY_S = 0.05


def _answers() -> dict[str, dict[str, Any]]:
    """What each resource type's query returns: a small record with low iron."""
    full = data.large_prefetch(observations=20, medication_requests=5, conditions=5)
    return {
        "Patient": full["patient"],
        "Condition": full["conditions"],
        "Observation": full["labs"],
        "MedicationRequest": full["medicationRequests"],
        "MedicationStatement": full["medicationStatements"],
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stall
    answers: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        server = self.server
        with server.lock:  # type: ignore[attr-defined]
            server.in_flight += 1  # type: ignore[attr-defined]
            server.peak = max(server.peak, server.in_flight)  # type: ignore[attr-defined]
        try:
            time.sleep(DELAY_S)
            self._answer()
        finally:
            with server.lock:  # type: ignore[attr-defined]
                server.in_flight -= 1  # type: ignore[attr-defined]

    def _answer(self) -> None:
        path = urlsplit(self.path).path.strip("/").split("/")
        kind = path[-2] if len(path) >= 2 and path[-2] == "Patient" else path[-1]
        body = self.answers.get(kind)
        if body is None:
            body = json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 0}).encode()
        self.server.requests += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def running() -> Iterator[ThreadingHTTPServer]:
    """The stub on 127.0.0.1, a free port, one thread per connection; stopped on exit."""
    _Handler.answers = {k: json.dumps(v).encode() for k, v in _answers().items()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.requests = 0  # type: ignore[attr-defined]
    #: Requests being answered now and the most at once: P2 checks that a hook's queries
    #: really ran side by side (a pool share below them makes rounds, and a slower figure).
    server.in_flight = server.peak = 0  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
