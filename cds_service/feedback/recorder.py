"""Records issued cards off the request thread, so that the store never slows or fails a hook.

A hook hands its cards over and answers; one background thread writes them. When the store
is down, a batch is dropped and counted (the answer is already with the clinician, and
feedback about an unrecorded card is still stored, as "unknown card"). When the queue is
full the batch is dropped and counted too: memory stays bounded.

On a graceful stop (gunicorn's ``worker_exit``, or the interpreter's exit after SIGTERM) the
queue is flushed, waiting at most ``flush_s``; answers still unwritten then are logged and
counted (``record-cards-at-exit``). A ``kill -9`` loses what is queued, at most
``max_pending`` answers (the queue's bound), none of them acknowledged to anyone.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from cds_service import metrics
from cds_service.feedback.store import IssuedCards

log = logging.getLogger(__name__)
#: Most answers written in one transaction.
BATCH = 100


class CardRecorder:
    def __init__(
        self,
        write: Callable[[Sequence[IssuedCards]], None],
        max_pending: int = 10_000,
        flush_s: float = 10.0,
    ):
        self._write = write
        self._queue: queue.Queue[IssuedCards] = queue.Queue(max_pending)
        self._lock = threading.Lock()
        self._flush_s = flush_s
        self._closed = False
        self.recorded = 0
        self.failed = 0
        self.dropped = 0
        # A daemon thread, so that a store that never answers cannot keep the process alive;
        # close() (at exit) is what keeps its queue from dying with it.
        threading.Thread(target=self._run, name="card-recorder", daemon=True).start()
        atexit.register(self.close)

    def record(self, issued: IssuedCards) -> None:
        """Hand one answer's cards over; never blocks, never raises."""
        try:
            self._queue.put_nowait(issued)
        except queue.Full:
            metrics.STORE_FAILURES.labels("record-cards-queue-full").inc()
            with self._lock:
                self.dropped += 1
            log.warning("issued cards not recorded: the recording queue is full")

    def pending(self) -> bool:
        """Whether some cards handed over are not written (or failed) yet."""
        return self._queue.unfinished_tasks > 0

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything handed over so far is written (or failed); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self) -> bool:
        """Flush before the process ends, waiting at most the flush bound; what is still
        unwritten then is logged and counted. True when nothing was left. Called by
        gunicorn's ``worker_exit`` and at interpreter exit; the second call returns at once."""
        if self._closed:
            return True
        self._closed = True
        if self.flush(self._flush_s):
            return True
        left = self._queue.unfinished_tasks
        metrics.STORE_FAILURES.labels("record-cards-at-exit").inc(left)
        log.error(
            "issued cards not recorded: the store did not take them before the process ended",
            extra={"answers": left, "waited_s": self._flush_s},
        )
        return False

    def _write_retrying_once(self, batch: Sequence[IssuedCards]) -> None:
        """A database just back hands out a dead pooled connection first: one more try on a
        fresh one, since feedback is accepted only about cards that were recorded."""
        try:
            self._write(batch)
        except SQLAlchemyError:
            self._write(batch)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH:  # under load, one transaction for what has queued up
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write_retrying_once(batch)
            except SQLAlchemyError as exc:
                metrics.STORE_FAILURES.labels("record-cards").inc()
                with self._lock:
                    self.failed += len(batch)
                log.warning(
                    "issued cards not recorded: the store failed",
                    extra={"answers": len(batch), "error": type(exc).__name__},
                )
            else:
                with self._lock:
                    self.recorded += len(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()
