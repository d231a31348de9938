"""P3 and P4: the production server (gunicorn, cds_service.gunicorn_conf) on 127.0.0.1.

P3 is requests per second of patient-view against the same server's /healthz, from a
bounded load generator in this process, sending a mix of patients (the small request under
as many patient ids) to a server whose store was filled beforehand with their history:
issued cards and feedback (benchmarks/store_fill.py), some of them with a topic suppressed;
P3 on SQLite, P3p on a private PostgreSQL server. The generator is a fixed number of
threads, each with one keep-alive connection, and stops at a fixed request count or a fixed
duration, whichever comes first. P4 reads each worker's resident memory after warm-up and
the time from start to /readyz 200.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks import data, store_fill
from benchmarks.report import Result

HOOK = "/cds-services/rls-secondary-causes"
THROUGHPUT_TARGET = 0.5
RSS_TARGET_MB = 150
READY_TARGET_S = 1.0
#: Settings a caller may pass through to the server under test (e.g. a database).
#: The small request's patient id, replaced to make the mix.
SMALL_PATIENT = b"rls-low-ferritin"
FILL_SECRET = "benchmark-fill-secret"
KEEP = {"RLS_CDS_DATABASE_URL", "RLS_CDS_SUPPRESSION_DAYS", "RLS_CDS_WORKERS"}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    started: float
    ready_s: float
    ready_cpu_s: tuple[float, tuple[float, ...]] = (0.0, ())
    """CPU seconds spent by the master and by each worker when /readyz first answered."""

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False


_BYTECODE = Path(tempfile.gettempdir(), f"rls-cds-bench-pycache-{os.getuid()}")


@contextmanager
def gunicorn(environ: dict[str, str] | None = None) -> Iterator[Server]:
    """gunicorn as `rls-cds serve --prod` runs it, demo mode, in a temp data dir."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RLS_CDS_") or k in KEEP}
        env |= {"RLS_CDS_DEMO": "true", "RLS_CDS_DATA_DIR": tmp, "RLS_CDS_LOG_LEVEL": "WARNING",
                "RLS_CDS_BIND": f"127.0.0.1:{port}"}  # fmt: skip
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        # Bytecode cached, as an installed package has it (pip compiles at install): from a
        # checkout with PYTHONDONTWRITEBYTECODE, every start would compile the service's
        # modules again (about 0.17 s). The first start of a run fills the cache.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(_BYTECODE)
        env |= environ or {}
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "cds_service", "serve", "--prod"],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            while not _ready(port):
                if process.poll() is not None or time.monotonic() - started > 60:
                    raise RuntimeError("gunicorn did not become ready")
                time.sleep(0.02)
            ready_s = time.monotonic() - started
            server = Server(process, port, started, ready_s)
            workers = tuple(cpu_s(pid) for pid in server.workers())
            server.ready_cpu_s = (cpu_s(process.pid), workers)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def load(
    port: int,
    path: str,
    body: bytes | list[bytes] | None,
    threads: int,
    requests: int,
    seconds: float,
) -> tuple[float, int]:
    """Requests per second over keep-alive connections, and how many failed; bounded. A
    list of bodies is sent in turn (each thread starting elsewhere in it)."""
    done, failed = [0] * threads, [0] * threads
    per_thread = requests // threads
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"} if body is not None else {}
    bodies = body if isinstance(body, list) else [body]

    def work(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for n in range(per_thread):
            if time.monotonic() > deadline:
                break
            sent = bodies[(index * 7 + n) % len(bodies)]
            try:
                connection.request("POST" if sent else "GET", path, body=sent, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    failed[index] += 1
            except (OSError, http.client.HTTPException):
                failed[index] += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            done[index] += 1
        connection.close()

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(done) / (time.monotonic() - started), sum(failed)


def cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process so far (/proc/<pid>/stat): unlike the wall
    time to ready, hardly changed by other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pss_mb(pid: int) -> float:
    """Proportional set size: each shared page counted once across the processes sharing it."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss for {pid}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def mix(patients: int) -> list[bytes]:
    """The small request under `patients` patient ids (those store_fill filled)."""
    small = data.small_body()
    return [small.replace(SMALL_PATIENT, _patient(n).encode()) for n in range(patients)]


def _patient(n: int) -> str:
    return f"{SMALL_PATIENT.decode()}-{n}"


def filled(url: str, patients: int, cards: int) -> dict[str, str]:
    """Fill the store at `url` with the history of the mix's patients (`cards` in all,
    feedback on one in 20, one patient in 10 with its iron card suppressed); the settings
    that point a server at it."""
    store = store_fill.migrated_store(url, FILL_SECRET.encode())
    ids = [_patient(n) for n in range(patients)]
    store_fill.fill(store, ids, max(1, cards // patients), suppressing=ids[::10])
    store.engine.dispose()
    return {"RLS_CDS_DATABASE_URL": url, "RLS_CDS_PATIENT_KEY_SECRET": FILL_SECRET}


def hook_rps(
    environ: dict[str, str], bodies: list[bytes], threads: int, requests: int, seconds: float
) -> tuple[float, float, int]:
    """/healthz and patient-view (the mix) requests per second of one server; failures."""
    with gunicorn(environ) as server:
        load(server.port, HOOK, bodies, threads, max(threads * 10, len(bodies)), seconds)
        health, health_failed = load(server.port, "/healthz", None, threads, requests, seconds)
        hooks, hook_failed = load(server.port, HOOK, bodies, threads, requests, seconds)
    return health, hooks, health_failed + hook_failed


def run(
    requests: int = 3000,
    seconds: float = 15.0,
    threads: int = 8,
    patients: int = 100,
    filled_cards: int = 100_000,
) -> list[Result]:
    small, large = data.small_body(), data.large_body()
    bodies = mix(patients)
    with gunicorn(environ={"RLS_CDS_SUPPRESSION_DAYS": "0"}) as server:
        for _ in range(3):
            load(server.port, HOOK, bodies, threads, threads * 10, seconds)
        health_ns, _ = load(server.port, "/healthz", None, threads, requests, seconds)
        small_ns, _ = load(server.port, HOOK, bodies, threads, requests, seconds)
    with tempfile.TemporaryDirectory() as store_dir:
        sqlite = filled(f"sqlite:///{store_dir}/filled.sqlite3", patients, filled_cards)
        with gunicorn(sqlite) as server:
            for body in (bodies, large):  # warm-up: every worker has answered both
                load(server.port, HOOK, body, threads, max(threads * 10, patients), seconds)
            workers = server.workers()  # after the warm-up: gunicorn forks them 0-0.1 s apart
            health, health_failed = load(server.port, "/healthz", None, threads, requests, seconds)
            small_rps, small_failed = load(server.port, HOOK, bodies, threads, requests, seconds)
            large_rps, large_failed = load(
                server.port, HOOK, large, threads, requests // 10, seconds
            )
            memory = [rss_mb(pid) for pid in workers]
            shared = [pss_mb(pid) for pid in workers]
            ready_s = server.ready_s
            master_cpu, workers_cpu = server.ready_cpu_s
    with _private_postgres() as pg_url:
        if pg_url is not None:
            pg = filled(pg_url, patients, filled_cards)
            pg_health, pg_rps, pg_failed = hook_rps(pg, bodies, threads, requests, seconds)
    failures = health_failed + small_failed + large_failed + (pg_failed if pg_url else 0)
    assert failures == 0, f"{failures} requests failed under load"
    ratio = small_rps / health
    store_notes = [
        f"The hooks send {patients} patients in turn (the small request under as many",
        f"ids) to a store filled beforehand with their {filled_cards:,} issued cards, an",
        "override on one in 20 and, for one patient in 10, the iron card suppressed.",
    ]
    if pg_url is not None:
        pg_ratio = pg_rps / pg_health
        postgresql = Result(
            "P3p",
            "as P3 on PostgreSQL (a private server, filled the same way)",
            f"{pg_ratio:.0%} ({pg_rps:.0f} vs {pg_health:.0f} req/s)",
            f">= {THROUGHPUT_TARGET:.0%}",
            pg_ratio >= THROUGHPUT_TARGET,
            ["As P3, the store on a PostgreSQL server started for the run."],
        )
    else:
        postgresql = Result("P3p", "as P3 on PostgreSQL", "not run", "-", None, ["no server"])
    load_notes = [
        f"gunicorn as `rls-cds serve --prod` runs it ({len(workers)} workers, one per CPU,",
        "4 threads each, demo mode so that no JWT is minted per call) on 127.0.0.1; the load",
        f"generator runs {threads} threads in this process, each on one keep-alive",
        f"connection, each series bounded by a request count ({requests} for /healthz and",
        f"the small request, {requests // 10} for the large) and {seconds:.0f} s. It shares",
        "the machine's CPUs with the server, for /healthz and the hooks alike.",
        f"Small: a demo patient's request ({len(small) / 1024:.0f} KiB, one card); large:",
        f"P1's ({len(large) / 1024:.0f} KiB).",
        *store_notes,
    ]
    return [
        Result(
            "P3",
            "patient-view rps, small prefetch, vs /healthz rps (same server)",
            f"{ratio:.0%} ({small_rps:.0f} vs {health:.0f} req/s)",
            f">= {THROUGHPUT_TARGET:.0%}",
            ratio >= THROUGHPUT_TARGET,
            load_notes,
        ),
        postgresql,
        Result(
            "P3n",
            "as P3, feedback suppression off (RLS_CDS_SUPPRESSION_DAYS=0)",
            f"{small_ns / health_ns:.0%} ({small_ns:.0f} vs {health_ns:.0f} req/s)",
            "(contrast)",
            None,
            [
                "As P3 on a fresh server without the per-call suppression query against the",
                "SQLite store (cards are still recorded): what that query costs under load.",
                "Same patient mix, empty store.",
            ],
        ),
        Result(
            "P3L",
            "patient-view rps, large prefetch, vs /healthz rps",
            f"{large_rps / health:.0%} ({large_rps:.0f} req/s)",
            "(contrast)",
            None,
            ["As P3, with the large request."],
        ),
        Result(
            "P4m",
            "resident memory per worker after warm-up",
            f"{max(memory):.0f} MB max ({', '.join(f'{m:.0f}' for m in memory)}; PSS "
            f"{', '.join(f'{m:.0f}' for m in shared)})",
            f"<= {RSS_TARGET_MB} MB",
            max(memory) <= RSS_TARGET_MB,
            [
                "VmRSS from /proc/<pid>/status of each gunicorn worker after the P3 load; it",
                "counts in full the pages a worker shares with the master (the modules it",
                "imported before the fork). PSS (/proc/<pid>/smaps_rollup) shares them out.",
            ],
        ),
        Result(
            "P4s",
            "process start to /readyz 200",
            f"{ready_s:.2f} s (CPU: master {master_cpu:.2f} s, workers "
            f"{', '.join(f'{c:.2f}' for c in workers_cpu)} s)",
            f"<= {READY_TARGET_S:.1f} s",
            ready_s <= READY_TARGET_S,
            [
                "From starting `rls-cds serve --prod` to the first 200 from /readyz (knowledge",
                "base loaded and checked, P3's filled store at the newest migration, polled every",
                "20 ms). The master",
                "imports the application once and migrates; each worker then builds its app.",
                "CPU: user + system seconds of each process by then (/proc/<pid>/stat), which",
                "other load on the machine hardly changes; the wall time it does. The second",
                "start of the run, with the bytecode the first one cached (as installed).",
            ],
        ),
    ]


@contextmanager
def _private_postgres() -> Iterator[str | None]:
    """The URL of a private PostgreSQL server of this run (never the machine's own); None
    when the machine has no PostgreSQL binaries."""
    from tests.private_postgres import _binaries, private_postgres

    if _binaries() is None:
        yield None
        return
    with private_postgres() as pg:
        yield pg.url
