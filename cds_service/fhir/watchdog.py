"""A wall-clock watchdog over each whole FHIR exchange: connect, headers and body.

A socket timeout bounds each ``recv``, so a server that drips its status line or headers a
byte at a time keeps a fetch (a pool thread and a connection) for as long as it likes; the
body loop of the client checks the deadline only between reads. Here each exchange is
watched: the connection it uses registers itself (WatchedAdapter), and when the hook's
deadline passes on the ticker the watchdog's one thread shuts the socket down, which ends
whatever read is blocked on it. An exchange that ends first unregisters under the same
lock, so a connection back in the pool is never cut.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from cds_service.fhir.clock import SYSTEM, Ticker

_current = threading.local()


class Watch:
    """One exchange under watch until `deadline` (on the watchdog's ticker)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.expired = False
        self.ended = False
        self._lock = threading.Lock()
        self._connection: HTTPConnection | None = None

    def attach(self, connection: HTTPConnection) -> None:
        """The connection the exchange is using (a new one or one from the pool)."""
        with self._lock:
            self._connection = connection
            if self.expired:
                _shut(connection)

    def expire(self) -> None:
        with self._lock:
            if self.ended:
                return
            self.expired = True
            if self._connection is not None:
                _shut(self._connection)

    def end(self) -> None:
        with self._lock:
            self.ended = True
            self._connection = None


def _shut(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed by the other side
            sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """Expires watches at their deadlines, from one daemon thread started on first use."""

    def __init__(self, ticker: Ticker = SYSTEM):
        self._ticker = ticker
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watching(self, deadline: float) -> Iterator[Watch]:
        """Watch the exchanges this thread makes inside the block."""
        watch = Watch(deadline)
        with self._lock:
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fhir-watchdog", daemon=True)
                self._thread.start()
        self._wake.set()
        _current.watch = watch
        try:
            yield watch
        finally:
            _current.watch = None
            watch.end()

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._heap and self._heap[0][2].ended:
                    heapq.heappop(self._heap)
                due = self._heap[0][0] if self._heap else None
                self._wake.clear()
            if due is None:
                self._wake.wait()
            else:
                self._ticker.wait(self._wake, due)
            now = self._ticker.now()
            expired: list[Watch] = []
            with self._lock:
                while self._heap and self._heap[0][0] <= now:
                    expired.append(heapq.heappop(self._heap)[2])
            for watch in expired:
                watch.expire()


def _register(connection: HTTPConnection) -> None:
    watch: Watch | None = getattr(_current, "watch", None)
    if watch is not None:
        watch.attach(connection)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections register with the thread's current watch."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }
