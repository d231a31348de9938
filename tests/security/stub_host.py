"""A loopback HTTP host standing in for an EHR's key server or FHIR server in attack tests.

It answers GETs from a table of paths and records every request target exactly as it arrived
on the wire, with its headers, so a test sees precisely what the service sent: after the
HTTP library's own normalisation, not before.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


@dataclass(frozen=True)
class Seen:
    """One request as it arrived: the raw request target and the headers."""

    path: str
    headers: dict[str, str]

    @property
    def decoded_path(self) -> str:
        """The path as a server that decodes percent escapes (and then dot segments) reads it."""
        path = self.path.split("?", 1)[0]
        for _ in range(3):
            path = unquote(path)
        segments: list[str] = []
        for segment in path.replace("\\", "/").split("/"):
            if segment == "..":
                if segments:
                    segments.pop()
            elif segment not in ("", "."):
                segments.append(segment)
        return "/" + "/".join(segments)


@dataclass
class StubHost:
    """Routes (raw path -> JSON document) and the requests seen so far."""

    base: str = ""
    routes: dict[str, Any] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    """TCP connections accepted, whether or not a request followed on them."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, path: str, document: Any) -> None:
        """Answer GET `path` with `document` as JSON. Like many servers (and proxies) this
        host decodes percent escapes and dot segments before routing: `path` is matched
        against the decoded path, with the raw query when `path` has one, else any query."""
        self.routes[path] = document

    def answer(self, seen: Seen) -> Any:
        query = seen.path.split("?", 1)[1] if "?" in seen.path else None
        if query is not None and f"{seen.decoded_path}?{query}" in self.routes:
            return self.routes[f"{seen.decoded_path}?{query}"]
        return self.routes.get(seen.decoded_path)

    def paths(self) -> list[str]:
        with self.lock:
            return [seen.path for seen in self.seen]

    def decoded_paths(self) -> list[str]:
        with self.lock:
            return [seen.decoded_path for seen in self.seen]


def _handler(host: StubHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen = Seen(self.path, dict(self.headers.items()))
            with host.lock:
                host.seen.append(seen)
            document = host.answer(seen)
            body = json.dumps(document if document is not None else {}).encode()
            self.send_response(200 if document is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads `seen`."""

    return Handler


class _CountingServer(ThreadingHTTPServer):
    """Counts every accepted connection into its host, before any request is read."""

    host: StubHost

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.host.lock:
            self.host.connections += 1
        super().process_request(request, client_address)


@contextmanager
def stub_host() -> Iterator[StubHost]:
    """A StubHost on a free loopback port until the block ends."""
    host = StubHost()
    server = _CountingServer(("127.0.0.1", 0), _handler(host))
    server.host = host
    server.daemon_threads = True
    host.base = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="stub-host", daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
