"""gunicorn settings for production (what ``rls-cds serve --prod`` and the Dockerfile run).

    gunicorn -c python:cds_service.gunicorn_conf 'cds_service.app:create_app()'

Workers: one per CPU this process may use (cgroup quota included), since a hook is CPU work
once its data is in; each worker runs a few threads so that hooks waiting on FHIR queries do
not hold a CPU. ``RLS_CDS_WORKERS`` and ``RLS_CDS_THREADS`` override both, ``RLS_CDS_BIND``
the address (default ``RLS_CDS_HOST:RLS_CDS_PORT``); ``RLS_CDS_METRICS_PORT`` adds a
second, internal one for /metrics. The worker timeout sits far above the
hook deadline; on SIGTERM workers finish the calls they have within ``graceful_timeout``.
Metrics of all workers are added up through files in ``PROMETHEUS_MULTIPROC_DIR``.
The master imports the application once before it forks (cds_service.preload, from
``on_starting``); each worker then creates its own app, recorder and connections.
"""

from __future__ import annotations

import gc
import math
import os
import sys
from pathlib import Path
from typing import Any

from cds_service import preload
from cds_service.settings import Settings

DEFAULT_THREADS = 4


def cpu_count(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 quota when one is set."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


_settings = Settings()

bind = [os.environ.get("RLS_CDS_BIND") or f"{_settings.host}:{_settings.port}"]
if _settings.metrics_port is not None:  # the internal port: metrics and probes only
    bind.append(f"{_settings.host}:{_settings.metrics_port}")
workers = int(os.environ.get("RLS_CDS_WORKERS") or cpu_count())
threads = int(os.environ.get("RLS_CDS_THREADS") or DEFAULT_THREADS)
worker_class = "gthread"
#: Far above the hook deadline (2.5 s by default, 60 s at most): a worker is killed only
#: when it is stuck, never for a slow FHIR server.
timeout = max(30, math.ceil(_settings.hook_deadline_s) * 2 + 10)
#: On SIGTERM a worker first finishes its calls (each within the hook deadline), then flushes
#: its card recorder (within RLS_CDS_RECORDER_FLUSH_S, see worker_exit): both fit, with room
#: to exit, before the master kills it.
graceful_timeout = max(
    20, math.ceil(_settings.hook_deadline_s) + math.ceil(_settings.recorder_flush_s) + 5
)
keepalive = 5
#: gunicorn's default bound of a header line, just above the longest Authorization header
#: the app reads (api.security.MAX_AUTHORIZATION_CHARS): the app answers 431 up to here,
#: gunicorn itself beyond. (Not imported: this module must not load the app before the
#: metrics directory is set.)
limit_request_field_size = 8190
#: The service writes one JSON line per hook call itself; gunicorn's access log would add a
#: second, non-JSON line per request (with the query string).
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
control_socket_disable = True  # gunicorn >= 24's control socket: not used, one less file
if Path("/dev/shm").is_dir():
    worker_tmp_dir = "/dev/shm"  # heartbeats off the (possibly slow, overlay) disk


def on_starting(server: Any) -> None:
    """Before the first worker forks: the master's one-time work (cds_service.preload:
    the metrics directory, the start-up checks, the application imported, the store
    migrated). A bad setting is one line and exit 2, as from ``rls-cds serve --prod``."""
    from cds_service.cli import InputError

    try:
        preload.prepare(_settings)
    except InputError as exc:
        print(f"rls-cds: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None


def post_worker_init(worker: Any) -> None:
    """Move what start-up built (knowledge base, schemas) out of the collector's way: the
    cyclic GC would otherwise walk it again and again while hooks allocate."""
    gc.collect()
    gc.freeze()


def worker_exit(server: Any, worker: Any) -> None:
    """The worker stops: write the issued cards still queued (bounded by the recorder's
    flush wait) so that a graceful stop loses none."""
    app = getattr(worker, "wsgi", None)
    runtime = getattr(app, "extensions", {}).get("rls_cds")
    if runtime is not None:
        runtime.feedback.recorder.close()


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges (its counters still count)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    preload.cleanup()
