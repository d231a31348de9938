"""A fault-injecting FHIR server on 127.0.0.1 for the hook's FHIR queries.

It serves one patient's record (resources by type, every search answered with the
resources of the searched type, a read of Patient/<id> with the Patient), except for the
resource types given a fault:

    slow        answers correctly, but only after SLOW_S seconds
    500         HTTP 500 with an OperationOutcome
    429         HTTP 429 with Retry-After: 120
    truncated   Content-Length larger than what is sent, then the connection is closed
    not-json    HTTP 200 with an HTML page
    next-loop   a searchset whose next link points back at the first page
    endless     a searchset whose next link always points at one more page
    drip        HTTP 200 and a body that comes one byte every DRIP_INTERVAL_S, forever
                (until the client goes away or the server is stopped)
    drip-headers  the status line and headers, one byte every DRIP_HEADERS_INTERVAL_S,
                forever: no answer ever starts, yet no socket read ever times out

Each request is recorded (path, fault, when it ended and whether the client left).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

FAULTS = (
    "slow",
    "500",
    "429",
    "truncated",
    "not-json",
    "next-loop",
    "endless",
    "drip",
    "drip-headers",
)
SLOW_S = 3.0
DRIP_INTERVAL_S = 0.1
DRIP_HEADERS_INTERVAL_S = 0.2
FHIR_JSON = "application/fhir+json"


@dataclass
class Served:
    """One request the stub answered (or was answering)."""

    path: str
    fault: str | None
    started: float
    ended: float | None = None
    client_left: bool = False


@dataclass
class FaultyFhir:
    """The stub's state: the record it serves, the faults, and what it was asked."""

    resources: list[dict[str, Any]]
    faults: dict[str, str] = field(default_factory=dict)
    served: list[Served] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    base_url: str = ""

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["resourceType"] == kind]

    def open_drips(self, fault: str = "drip") -> list[Served]:
        return [s for s in self.served if s.fault == fault and s.ended is None]


def _searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    if resources:
        bundle["entry"] = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    return bundle


def _handler(state: FaultyFhir) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            split = urlsplit(self.path)
            parts = [p for p in split.path.split("/") if p]
            kind = parts[1] if len(parts) > 1 else ""
            fault = state.faults.get(kind)
            served = Served(self.path, fault, time.monotonic())
            state.served.append(served)
            try:
                self._answer(kind, parts, split.query, fault)
            except (BrokenPipeError, ConnectionResetError):
                served.client_left = True
            finally:
                served.ended = time.monotonic()

        def _send(self, status: int, body: bytes, headers: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            self.send_header("Content-Type", headers.get("Content-Type", FHIR_JSON))
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                if name != "Content-Type":
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, value: Any, status: int = 200, **headers: str) -> None:
            self._send(status, json.dumps(value).encode(), headers)

        def _record(self, kind: str, parts: list[str]) -> Any:
            if len(parts) > 2:  # a read: Patient/<id>
                return next((r for r in state.of_type(kind) if r["id"] == parts[2]), None)
            return _searchset(state.of_type(kind))

        def _answer(self, kind: str, parts: list[str], query: str, fault: str | None) -> None:
            page_url = f"{state.base_url}/{kind}"
            if fault is None:
                self._json(self._record(kind, parts))
            elif fault == "slow":
                state.stopping.wait(SLOW_S)
                self._json(self._record(kind, parts))
            elif fault == "500":
                outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
                self._json(outcome, status=500)
            elif fault == "429":
                self._json(
                    {"resourceType": "OperationOutcome"}, status=429, **{"Retry-After": "120"}
                )
            elif fault == "truncated":
                body = json.dumps(self._record(kind, parts)).encode()
                self.send_response(200)
                self.send_header("Content-Type", FHIR_JSON)
                self.send_header("Content-Length", str(len(body) + 1000))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif fault == "not-json":
                self._send(
                    200,
                    b"<html><body>Service Unavailable</body></html>",
                    {"Content-Type": "text/html"},
                )
            elif fault == "next-loop":
                page = "page=2" in query
                target = f"{page_url}?page=1" if page else f"{page_url}?page=2"
                self._json(_searchset(state.of_type(kind), target))
            elif fault == "endless":
                number = int(query.rpartition("page=")[2] or 0) if "page=" in query else 0
                self._json(_searchset(state.of_type(kind), f"{page_url}?page={number + 1}"))
            elif fault == "drip":
                self.send_response(200)
                self.send_header("Content-Type", FHIR_JSON)
                self.send_header("Content-Length", "100000000")
                self.end_headers()
                self.wfile.flush()
                while not state.stopping.is_set():
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    state.stopping.wait(DRIP_INTERVAL_S)
                self.close_connection = True
            elif fault == "drip-headers":
                head = f"HTTP/1.1 200 OK\r\nContent-Type: {FHIR_JSON}\r\nX-Drip: ".encode()
                sent = 0
                while not state.stopping.is_set():
                    self.wfile.write(head[sent : sent + 1] if sent < len(head) else b"x")
                    self.wfile.flush()
                    sent += 1
                    state.stopping.wait(DRIP_HEADERS_INTERVAL_S)
                self.close_connection = True
            else:
                raise AssertionError(f"unknown fault {fault!r}")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-request are part of the test: no tracebacks."""


@contextmanager
def faulty_fhir(
    resources: list[dict[str, Any]], faults: Mapping[str, str] = {}
) -> Iterator[FaultyFhir]:
    """Run the stub on a free loopback port; yields its state (base_url ends in /fhir)."""
    state = FaultyFhir(list(resources), dict(faults))
    server = _Server(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_port}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
