"""Nothing queued is lost on a graceful stop (issue 17, point 5).

A real gunicorn (one worker) over a SQLite file whose card writes are slow: hook calls answer
at once and their issued cards queue behind the slow writer. A SIGTERM then must not drop
them: the worker flushes its recorder (within RLS_CDS_RECORDER_FLUSH_S) before it exits, and
the store holds every answer's cards. (Before, the recorder was a daemon thread killed with
the worker: 60 of 60 queued answers were lost.)
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY

from cds_service.feedback.recorder import CardRecorder
from cds_service.feedback.store import IssuedCards
from tests import builders as b
from tests.integration.test_packaging_and_serve import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
CALLS = 30


def hook(base: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base}/cds-services/rls-secondary-causes",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_sigterm_flushes_every_queued_answer_to_the_store(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLS_CDS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env |= {
        "RLS_CDS_BIND": f"127.0.0.1:{port}",
        "RLS_CDS_WORKERS": "1",
        "RLS_CDS_DEMO": "true",
        "RLS_CDS_DATA_DIR": str(tmp_path),
        "RLS_CDS_LOG_LEVEL": "WARNING",
        "SLOW_STORE_WRITE_S": "1.5",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:cds_service.gunicorn_conf",
         "tests.operations.slow_store_app:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    recent = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    low = b.observation(b.FERRITIN, 38, "ng/mL", recent)
    answered: set[str] = set()
    try:
        wait_until_healthy(base, server)
        for _ in range(CALLS):
            body = b.hook_request(b.prefetch(b.rls(), low))
            assert hook(base, body)["cards"], "every call issues a card"
            answered.add(body["hookInstance"])
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert server.returncode == 0, output
    with sqlite3.connect(tmp_path / "rls-cds.sqlite3") as database:
        recorded = {row[0] for row in database.execute("SELECT hook_instance FROM issued_card")}
    assert recorded == answered, f"{len(answered - recorded)} of {CALLS} answers lost"


def _issued(n: int) -> IssuedCards:
    return IssuedCards("rls-secondary-causes", f"hook-{n}", "demo", None, "key", b.NOW, [])


def test_what_the_store_does_not_take_in_time_is_logged_and_counted(caplog):
    """A store that never answers: close() gives up after the flush bound, and says how many
    answers are lost, in the log and in rls_cds_store_failures_total."""
    release = threading.Event()
    recorder = CardRecorder(lambda _batch: release.wait(), flush_s=0.2)
    label = {"operation": "record-cards-at-exit"}
    before = REGISTRY.get_sample_value("rls_cds_store_failures_total", label) or 0.0
    try:
        for n in range(3):
            recorder.record(_issued(n))
        with caplog.at_level(logging.ERROR, logger="cds_service.feedback.recorder"):
            assert recorder.close() is False
        assert REGISTRY.get_sample_value("rls_cds_store_failures_total", label) == before + 3
        (line,) = [r for r in caplog.records if "not recorded" in r.getMessage()]
        assert line.answers == 3  # type: ignore[attr-defined]
        assert recorder.close() is True  # once only: the interpreter's exit does not wait again
    finally:
        release.set()


def test_close_waits_for_a_slow_store_within_the_bound():
    written: list[str] = []
    gate = threading.Event()

    def write(batch):
        gate.wait(5)
        written.extend(issued.hook_instance for issued in batch)

    recorder = CardRecorder(write, flush_s=30)
    for n in range(5):
        recorder.record(_issued(n))
    gate.set()
    assert recorder.close() is True
    assert sorted(written) == [f"hook-{n}" for n in range(5)]


def test_gunicorn_waits_for_the_calls_and_the_flush_before_it_kills():
    from cds_service import gunicorn_conf
    from cds_service.settings import Settings

    settings = Settings()
    assert gunicorn_conf.graceful_timeout > settings.hook_deadline_s + settings.recorder_flush_s
