"""Calls with a bounded wait: the caller stops waiting after a budget, the call runs on.

A database that stops answering on an open connection (a paused server, a partition that
keeps TCP up) holds the thread that asked for as long as it lasts: no client-side timeout of
the driver covers a socket that is open and silent. So a request thread never asks the
store itself; it hands the call to a worker thread and waits at most its budget. A worker
that is still stuck keeps its slot: at most ``slots`` calls are ever stuck at once, and
beyond that a caller waits for a free slot within the same budget, never for the store.
Workers are kept between calls (starting a thread per call cost milliseconds under load,
on every hook) and are daemon threads, so that a stuck one cannot keep a stopping process
alive. A forked child (a gunicorn worker) starts with none and all its slots free: the
parent's workers do not exist there.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")


class Overdue(Exception):
    """The call did not finish within its budget (it may still finish later)."""


class BoundedCalls:
    """At most `slots` calls at once, each on one of at most `slots` kept worker threads."""

    def __init__(self, slots: int, name: str):
        self._slots = slots
        self._name = name
        self._start_afresh()
        _everywhere.add(self)

    def _start_afresh(self) -> None:
        self._free = threading.BoundedSemaphore(self._slots)
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0  # workers waiting for a job, under _lock
        self._lock = threading.Lock()

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

        try:
            self._hand_over(run)
        except BaseException:
            self._free.release()
            raise
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise Overdue(f"the {self._name} call did not finish within {budget_s} s") from None

    def _hand_over(self, job: Callable[[], None]) -> None:
        """Queue `job` for an idle worker, or start one. A worker counts itself idle before
        it gives its slot back, so with no idle worker every worker holds a slot: there are
        never more workers than slots."""
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        if start:  # before the job is queued: a thread that cannot start leaves no job behind
            threading.Thread(target=self._work, name=self._name, daemon=True).start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1
            self._free.release()


_everywhere: weakref.WeakSet[BoundedCalls] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for calls in list(_everywhere):
        calls._start_afresh()


os.register_at_fork(after_in_child=_after_fork_in_child)
