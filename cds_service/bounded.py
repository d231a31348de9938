"""Calls with a bounded wait: the caller stops waiting after a budget, the call runs on.

A database that stops answering on an open connection (a paused server, a partition that
keeps TCP up) holds the thread that asked for as long as it lasts: no client-side timeout of
the driver covers a socket that is open and silent. So a request thread never asks the
store itself; it hands the call to a worker thread and waits at most its budget. A worker
that is still stuck keeps its slot: at most ``slots`` calls are ever stuck at once, and
beyond that a caller waits for a free slot within the same budget, never for the store.
Workers are daemon threads, so that a stuck one cannot keep a stopping process alive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")


class Overdue(Exception):
    """The call did not finish within its budget (it may still finish later)."""


class BoundedCalls:
    def __init__(self, slots: int, name: str):
        self._free = threading.BoundedSemaphore(slots)
        self._name = name

    def call(self, function: Callable[[], T], budget_s: float) -> T:
        """`function()`'s result or exception, or Overdue once `budget_s` has passed."""
        deadline = time.monotonic() + budget_s
        if not self._free.acquire(timeout=budget_s):
            raise Overdue(f"every {self._name} worker is still waiting on an earlier call")
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as exc:  # handed to the caller, who re-raises it
                future.set_exception(exc)
            finally:
                self._free.release()

        try:
            threading.Thread(target=run, name=self._name, daemon=True).start()
        except BaseException:
            self._free.release()
            raise
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise Overdue(f"the {self._name} call did not finish within {budget_s} s") from None
