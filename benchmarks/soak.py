"""SOAK: a bounded load of mixed hooks and feedback against gunicorn with two workers.

gunicorn as ``rls-cds serve --prod`` runs it (benchmarks.server's launcher, demo mode, 2
workers) on 127.0.0.1, over a SQLite file (and, in ``make bench``, PostgreSQL too). A few
threads in this process send the shipped example requests (fhir_fixtures/requests/*.json:
patient-view, order-select and order-sign, each with a fresh hookInstance) and post feedback
on every card returned: accepted with its first suggestion when it has one, else overridden
with a reason that does not suppress (so that every call keeps returning cards). Every tenth
feedback post is sent twice (idempotence: the second stores nothing). The load stops at a
fixed number of hook calls or a fixed duration, whichever comes first.

Checked: no 5xx (no non-2xx at all, no broken connection); nothing lost (the sum of
``stored`` over 2xx feedback answers equals the rows of the feedback table, read with
SQLAlchemy after the run; the cards returned equal the rows of the issued-card index); the
same worker processes at the end as at the start; each worker's resident memory (VmRSS from
/proc) after a warm-up and at the end grows less than RSS_GROWTH_BOUND_MB.

``python -m benchmarks --only SOAK`` runs the long variant and writes the "Soak" section of
BENCHMARKS.md (the rest of the file is kept); tests/hardening/test_soak.py runs a short one.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from benchmarks.report import Result, machine
from benchmarks.server import Server, gunicorn, rss_mb
from cds_service.settings import normalise_database_url

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = ROOT / "fhir_fixtures" / "requests"
SERVICES = {
    "patient-view": "rls-secondary-causes",
    "order-select": "rls-order-select",
    "order-sign": "rls-order-sign",
}
#: Reasons that suppress a patient-view topic; the soak overrides with others.
SUPPRESSING = {"already-addressed", "patient-declined"}
WORKERS = 2
THREADS = 4
#: How long the load waits before resending feedback answered 503 cards-not-recorded-yet.
RETRY_S = 0.2
#: Growth of a worker's RSS from after the warm-up to the end of the run. After the warm-up
#: every worker has answered every example request on all its threads, so its caches (value
#: set lookups, SQLAlchemy's compiled statements, the connection pool, one malloc arena per
#: thread) are full; what may still move is allocator fragmentation, a few MB. A leak of one
#: request body's size (5-60 KiB) per call would add 10 MB per 1000 calls to a worker, so
#: 30 MB is crossed within the short variant's calls by any leak of that size.
RSS_GROWTH_BOUND_MB = 30.0
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET = "soak-patient-key-secret"
HEADING = "## Soak"
#: The section of the last soak run in this process (written by write_section).
_last_section: list[str] = []


@dataclass
class Tally:
    """What the load generator saw; updated under `lock` by every thread."""

    hooks: int = 0
    feedback_posts: int = 0
    resent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_hook: Counter[str] = field(default_factory=Counter)
    broken: int = 0  # connection errors, timeouts
    not_recorded_yet: int = 0  # feedback answered 503 cards-not-recorded-yet, then retried
    cards: int = 0
    acknowledged: int = 0  # sum of `stored` over 2xx feedback answers
    already: int = 0  # sum of `alreadyStored`
    slowest_s: float = 0.0
    #: Per kind ("hook", "feedback"): the statuses (None: broken) and the slowest answer.
    kinds: dict[str, Counter[int | None]] = field(default_factory=dict)
    slowest: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.broken

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def not_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)


@dataclass
class Figures:
    store: str
    seconds: float
    warmup: Tally
    load: Tally
    load_seconds: float
    workers_start: list[int]
    workers_end: list[int]
    rss_spawned: dict[int, float]  # before any request
    rss_start: dict[int, float]  # after the warm-up
    rss_mid: dict[int, float]  # at mid-run
    rss_end: dict[int, float]
    rss_max: dict[int, float]
    cpu_s: dict[int, float]  # CPU seconds of each worker during the measured load
    stored_rows: int
    issued_rows: int
    store_failures: float

    @property
    def tallies(self) -> tuple[Tally, Tally]:
        return self.warmup, self.load

    @property
    def requests(self) -> int:
        return sum(t.requests for t in self.tallies)

    @property
    def hooks(self) -> int:
        return sum(t.hooks for t in self.tallies)

    @property
    def server_errors(self) -> int:
        return sum(t.server_errors for t in self.tallies)

    @property
    def not_2xx(self) -> int:
        return sum(t.not_2xx for t in self.tallies)

    @property
    def broken(self) -> int:
        return sum(t.broken for t in self.tallies)

    @property
    def acknowledged(self) -> int:
        return sum(t.acknowledged for t in self.tallies)

    @property
    def feedback_posts(self) -> int:
        return sum(t.feedback_posts for t in self.tallies)

    @property
    def cards(self) -> int:
        return sum(t.cards for t in self.tallies)

    @property
    def rate(self) -> float:
        return self.load.requests / self.load_seconds

    @property
    def growth(self) -> dict[int, float]:
        return {pid: self.rss_end[pid] - self.rss_start[pid] for pid in self.rss_start}

    def failures(self) -> list[str]:
        """What broke the soak's promises; empty when it held."""
        found = []
        if self.server_errors or self.not_2xx or self.broken:
            found.append(
                f"{self.server_errors} 5xx, {self.not_2xx} non-2xx, {self.broken} broken "
                f"connections: {dict(self.warmup.statuses + self.load.statuses)}"
            )
        if self.acknowledged != self.stored_rows:
            found.append(f"feedback acknowledged {self.acknowledged} != stored {self.stored_rows}")
        if self.cards != self.issued_rows:
            found.append(f"cards returned {self.cards} != recorded {self.issued_rows}")
        if min(self.cpu_s.values()) < 0.1 * sum(self.cpu_s.values()):
            found.append(f"a worker was left idle (CPU s: {self.cpu_s})")
        if self.workers_start != self.workers_end:
            found.append(f"workers changed: {self.workers_start} -> {self.workers_end}")
        if self.store_failures:
            found.append(f"rls_cds_store_failures_total = {self.store_failures:.0f}")
        grown = {pid: g for pid, g in self.growth.items() if g > RSS_GROWTH_BOUND_MB}
        if grown:
            found.append(f"RSS grew more than {RSS_GROWTH_BOUND_MB:.0f} MB: {grown}")
        return found


# --- the load -------------------------------------------------------------------------------


def templates() -> list[tuple[str, dict[str, Any]]]:
    """(service path, request) of the shipped examples, interleaved: every patient-view
    example followed by one order example in turn (half patient-view, a quarter each of
    order-select and order-sign)."""
    loaded = [json.loads(p.read_text("utf-8")) for p in sorted(REQUESTS.glob("*.json"))]
    views = [body for body in loaded if body["hook"] == "patient-view"]
    orders = [body for body in loaded if body["hook"] != "patient-view"]
    mixed = []
    for n, view in enumerate(views):
        mixed += [view, orders[n % len(orders)]]
    return [(f"/cds-services/{SERVICES[body['hook']]}", body) for body in mixed]


def feedback_on(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Accepted with the first suggestion when a card has one, else overridden."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    items = []
    for card in cards:
        item: dict[str, Any] = {"card": card["uuid"], "outcomeTimestamp": now}
        if card.get("suggestions"):
            item["outcome"] = "accepted"
            item["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
        else:
            item["outcome"] = "overridden"
            reasons = [r for r in card.get("overrideReasons", []) if r["code"] not in SUPPRESSING]
            if reasons:
                reason = {"system": reasons[0]["system"], "code": reasons[0]["code"]}
                item["overrideReason"] = {"reason": reason, "userComment": "soak"}
        items.append(item)
    return items


class Connection:
    """One keep-alive connection, replaced by a new one every `renew` requests (so that
    the kernel hands connections to both workers in turn) and when broken (counted)."""

    def __init__(self, port: int, renew: int = 50):
        self.port = port
        self.renew = renew
        self._used = 0
        self._http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int | None, Any, float]:
        self._used += 1
        if self._used % self.renew == 0:
            self._http.close()
        started = time.monotonic()
        try:
            self._http.request(
                "POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"}
            )
            response = self._http.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self._http.close()
            self._http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            return None, None, time.monotonic() - started
        answer = json.loads(data) if data else None
        return response.status, answer, time.monotonic() - started

    def get(self, path: str) -> str:
        self._http.request("GET", path)
        return self._http.getresponse().read().decode()

    def close(self) -> None:
        self._http.close()


def drive(
    port: int,
    calls: int,
    seconds: float,
    threads: int,
    renew: int = 50,
    stop: threading.Event | None = None,
) -> tuple[Tally, float]:
    """At most `calls` hook calls (each followed by feedback on its cards) within `seconds`,
    from `threads` threads each on one keep-alive connection (a new one every `renew`
    requests), none begun once `stop` is set; the tally and the time it took."""
    tally = Tally()
    mix = templates()
    deadline = time.monotonic() + seconds
    issued = [0]

    def note(status: int | None, took: float, kind: str) -> None:
        tally.slowest_s = max(tally.slowest_s, took)
        tally.slowest[kind] = max(tally.slowest[kind], took)
        tally.kinds.setdefault(kind, Counter())[status] += 1
        if status is None:
            tally.broken += 1
        else:
            tally.statuses[status] += 1

    def work() -> None:
        connection = Connection(port, renew)
        while True:
            with tally.lock:
                if issued[0] >= calls or time.monotonic() >= deadline:
                    break
                if stop is not None and stop.is_set():
                    break
                n = issued[0]
                issued[0] += 1
            path, template = mix[n % len(mix)]
            body = template | {"hookInstance": str(uuid.uuid4())}
            status, answer, took = connection.post(path, body)
            cards = answer["cards"] if status == 200 else []
            with tally.lock:
                note(status, took, "hook")
                tally.hooks += 1
                tally.by_hook[body["hook"]] += 1
                tally.cards += len(cards)
            if not cards:
                continue
            items = {"feedback": feedback_on(cards)}
            for attempt in range(2 if n % 10 == 0 else 1):
                status, answer, took = connection.post(path + "/feedback", items)
                while status == 503 and answer and answer["error"] == "cards-not-recorded-yet":
                    # the card was answered by one worker and is still on its way to the
                    # store when another gets its feedback: retried as an EHR would
                    with tally.lock:
                        tally.not_recorded_yet += 1
                    time.sleep(RETRY_S)
                    status, answer, took = connection.post(path + "/feedback", items)
                with tally.lock:
                    note(status, took, "feedback")
                    tally.feedback_posts += 1
                    tally.resent += attempt
                    if status is not None and 200 <= status < 300:
                        tally.acknowledged += answer["stored"]
                        tally.already += answer["alreadyStored"]
        connection.close()

    pool = [threading.Thread(target=work, name=f"soak-{i}") for i in range(threads)]
    started = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return tally, time.monotonic() - started


class Sampler:
    """Each worker's RSS once a second while the load runs: the series, for the highest and
    the one at mid-run."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.series: list[dict[int, float]] = [{pid: rss_mb(pid) for pid in pids}]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            with suppress(OSError, RuntimeError):  # a worker gone: seen at the end
                self.series.append({pid: rss_mb(pid) for pid in self.pids})

    def stop(self) -> tuple[dict[int, float], dict[int, float]]:
        """The highest value of each worker, and the one at mid-run."""
        self._stop.set()
        self._thread.join(5)
        highest = {pid: max(sample[pid] for sample in self.series) for pid in self.pids}
        return highest, self.series[len(self.series) // 2]


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used: /proc/<pid>/stat fields 14 and 15."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def store_failures(port: int) -> float:
    """rls_cds_store_failures_total summed over its labels, from /metrics (all workers)."""
    connection = Connection(port)
    page = connection.get("/metrics")
    connection.close()
    pattern = r"^rls_cds_store_failures_total\{[^}]*\} ([0-9.e+]+)$"
    return sum(float(value) for value in re.findall(pattern, page, re.MULTILINE))


def settled_count(url: str, table: str, expected: int, within_s: float = 20.0) -> int:
    """Rows of `table`, read again until they reach `expected` (the card index is written
    by each worker's background recorder, shortly after the answers) or time runs out."""
    engine = create_engine(normalise_database_url(url))
    deadline = time.monotonic() + within_s
    try:
        while True:
            with engine.connect() as connection:
                rows = int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            if rows >= expected or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)
    finally:
        engine.dispose()


def soak(
    database_url: str,
    seconds: float,
    calls: int,
    threads: int = THREADS,
    store: str = "SQLite",
    environ: dict[str, str] | None = None,
) -> Figures:
    """Run the soak against a fresh gunicorn (WORKERS workers) on `database_url`."""
    mix = len(templates())
    env = {"RLS_CDS_DATABASE_URL": database_url, "RLS_CDS_WORKERS": str(WORKERS)}
    started = time.monotonic()
    with gunicorn(environ=env | (environ or {})) as server:
        workers = _workers(server)
        spawned = {pid: rss_mb(pid) for pid in workers}
        # Warm-up: a new connection per call, so that both workers answer every example a
        # few times, on all their threads.
        warmup, _ = drive(server.port, mix * WORKERS * THREADS * 2, seconds, threads, renew=1)
        rss_start = {pid: rss_mb(pid) for pid in workers}
        cpu_start = {pid: cpu_s(pid) for pid in workers}
        sampler = Sampler(workers)
        load, load_seconds = drive(server.port, calls, seconds, threads)
        highest, mid = sampler.stop()
        rss_end = {pid: rss_mb(pid) for pid in workers}
        cpu = {pid: cpu_s(pid) - cpu_start[pid] for pid in workers}
        workers_end = _workers(server)
        failures = store_failures(server.port)
        acknowledged = warmup.acknowledged + load.acknowledged
        stored_rows = settled_count(database_url, "feedback", acknowledged, within_s=5)
        issued_rows = settled_count(database_url, "issued_card", warmup.cards + load.cards)
    return Figures(
        store=store,
        seconds=time.monotonic() - started,
        warmup=warmup,
        load=load,
        load_seconds=load_seconds,
        workers_start=workers,
        workers_end=workers_end,
        rss_spawned=spawned,
        rss_start=rss_start,
        rss_end=rss_end,
        rss_mid=mid,
        rss_max={pid: max(highest[pid], rss_end[pid]) for pid in workers},
        cpu_s=cpu,
        stored_rows=stored_rows,
        issued_rows=issued_rows,
        store_failures=failures,
    )


def _workers(server: Server) -> list[int]:
    deadline = time.monotonic() + 30
    while len(pids := sorted(server.workers())) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def sqlite_soak(seconds: float, calls: int, threads: int = THREADS) -> Figures:
    with tempfile.TemporaryDirectory(prefix="rls-cds-soak-") as tmp:
        return soak(f"sqlite:///{Path(tmp) / 'soak.sqlite3'}", seconds, calls, threads)


@contextmanager
def pg_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database on 127.0.0.1:5432 (named like the test databases, so that
    a run killed before it is dropped has it dropped by the next test session), or None
    when the server cannot be reached."""
    import psycopg

    name = f"rls_cds_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        yield None
        return
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def postgresql_soak(seconds: float, calls: int, threads: int = THREADS) -> Figures | None:
    with pg_database() as url:
        if url is None:
            return None
        secret = {"RLS_CDS_PATIENT_KEY_SECRET": SECRET}
        return soak(url, seconds, calls, threads, store="PostgreSQL", environ=secret)


# --- the benchmark and its section of BENCHMARKS.md -----------------------------------------


def run(seconds: float = 120.0, pg_seconds: float = 60.0, calls: int = 100_000) -> list[Result]:
    """`make bench`'s soak: SQLite for `seconds`, then PostgreSQL for `pg_seconds`."""
    runs = [sqlite_soak(seconds, calls)]
    pg = postgresql_soak(pg_seconds, calls)
    if pg is not None:
        runs.append(pg)
    _last_section[:] = section_lines(runs, postgresql_missing=pg is None)
    return [result for n, figures in enumerate(runs, 1) for result in results(f"S{n}", figures)]


def results(key: str, f: Figures) -> list[Result]:
    growth = ", ".join(f"{g:+.1f}" for g in f.growth.values())
    what = f"soak, {f.store}, {WORKERS} workers, {f.load_seconds:.0f} s"
    return [
        Result(
            key,
            what + ": 5xx / requests",
            f"{f.server_errors} / {f.requests} ({f.rate:.0f} req/s)",
            "0 5xx",
            not f.server_errors and not f.not_2xx and not f.broken,
            [],
        ),
        Result(
            key + "f",
            f"soak, {f.store}: feedback acknowledged vs stored",
            f"{f.acknowledged} vs {f.stored_rows}",
            "equal",
            f.acknowledged == f.stored_rows,
            [],
        ),
        Result(
            key + "m",
            f"soak, {f.store}: RSS growth per worker after warm-up",
            f"{growth} MB",
            f"<= {RSS_GROWTH_BOUND_MB:.0f} MB",
            all(g <= RSS_GROWTH_BOUND_MB for g in f.growth.values()),
            [],
        ),
    ]


def owns(result: Result) -> bool:
    """A line of the soak (kept out of the main table: it has its own section)."""
    return re.fullmatch(r"S\d+[a-z]?", result.key) is not None


def section_lines(runs: list[Figures], postgresql_missing: bool = False) -> list[str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        ("hook calls (patient-view / order-select / order-sign)", lambda f: (
            f"{f.hooks} ({' / '.join(str(sum(t.by_hook[h] for t in f.tallies)) for h in SERVICES)})"
        )),
        ("requests in all (hooks + feedback posts)", lambda f: f"{f.requests}"),
        ("measured load: requests, duration, rate", lambda f: (
            f"{f.load.requests} in {f.load_seconds:.0f} s = {f.rate:.0f} req/s"
        )),
        ("5xx / other non-2xx / broken connections", lambda f: (
            f"{f.server_errors} / {f.not_2xx - f.server_errors} / {f.broken}"
        )),
        ("slowest answer", lambda f: f"{max(t.slowest_s for t in f.tallies) * 1000:.0f} ms"),
        ("feedback posts (of them resent)", lambda f: (
            f"{f.feedback_posts} ({sum(t.resent for t in f.tallies)})"
        )),
        ("feedback acknowledged (sum of `stored`) vs rows stored", lambda f: (
            f"{f.acknowledged} vs {f.stored_rows}"
        )),
        ("resent items answered `alreadyStored`", lambda f: f"{sum(t.already for t in f.tallies)}"),
        ("cards returned vs recorded in the card index", lambda f: f"{f.cards} vs {f.issued_rows}"),
        ("rls_cds_store_failures_total", lambda f: f"{f.store_failures:.0f}"),
        ("worker RSS at spawn, MB", lambda f: _per_worker(f.rss_spawned)),
        ("worker RSS after warm-up -> mid-run -> end (max), MB", lambda f: ", ".join(
            f"{f.rss_start[p]:.0f} -> {f.rss_mid[p]:.0f} -> {f.rss_end[p]:.0f} "
            f"({f.rss_max[p]:.0f})" for p in f.workers_start
        )),
        ("worker RSS growth after warm-up, MB", lambda f: _per_worker(f.growth, signed=True)),
        ("worker CPU seconds during the measured load", lambda f: ", ".join(
            f"{v:.1f}" for v in f.cpu_s.values())),
        ("same worker processes at the end", lambda f: "yes" if (
            f.workers_start == f.workers_end) else f"no: {f.workers_end}"),
        ("verdict", lambda f: "pass" if not f.failures() else "FAIL: " + "; ".join(f.failures())),
    ]  # fmt: skip
    header = ("", *(f.store for f in runs))
    table = [header] + [(label, *(value(f) for f in runs)) for label, value in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in table]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    f = runs[0]
    notes = [
        HEADING,
        "",
        f"Latest run of `python -m benchmarks --only SOAK` (also part of `make bench`), {when}.",
        f"gunicorn as `rls-cds serve --prod` runs it, {WORKERS} workers of 4 threads, demo",
        f"mode, on 127.0.0.1; {THREADS} client threads in the benchmark process, each on one",
        "keep-alive connection, send the shipped example requests (fhir_fixtures/requests:",
        "half patient-view, a quarter each order-select and order-sign; a fresh hookInstance",
        "each) and post feedback on every card returned (accepted with its first suggestion,",
        "else overridden with a reason that does not suppress; every tenth post sent twice).",
        f"A warm-up ({f.warmup.hooks} calls) first, then the measured load, bounded by a call",
        "count and a duration. Feedback stored is counted with SQLAlchemy in the store after",
        "the run; RSS is VmRSS of each worker from /proc. Memory bound: growth after warm-up",
        f"<= {RSS_GROWTH_BOUND_MB:.0f} MB per worker (caches are full after warm-up; a leak of",
        "one request body per call would cross it within a few thousand calls).",
        "Machine: " + "; ".join(machine()) + ".",
    ]
    if postgresql_missing:
        notes.append("PostgreSQL (127.0.0.1:5432) could not be reached: not run on it.")
    return [*notes, "", *lines]


def _per_worker(values: dict[int, float], signed: bool = False) -> str:
    return ", ".join(f"{v:+.1f}" if signed else f"{v:.0f}" for v in values.values())


def find_section(path: Path, heading: str) -> str | None:
    """The section under `heading` of the file at `path` (up to the next ``## ``), if any."""
    if not path.exists():
        return None
    found = re.search(rf"^{heading}\n.*?(?=^## |\Z)", path.read_text("utf-8"), re.S | re.M)
    return found.group(0).rstrip("\n") if found else None


def put_section(path: Path, heading: str, lines: list[str], kept: str | None) -> None:
    """Put the section under `heading` at the end of the file: `lines` (this run's), else
    `kept` (the one that was there before the rest of the file was rewritten); the rest of
    the file stays as it is."""
    new = "\n".join(lines) if lines else kept
    if new is None:
        return
    body = path.read_text("utf-8") if path.exists() else "# Benchmarks\n"
    old = find_section(path, heading)
    if old is not None:
        body = re.sub(r"\n{3,}", "\n\n", body.replace(old, ""))
    path.write_text(body.rstrip("\n") + "\n\n" + new + "\n", encoding="utf-8")


def section(path: Path) -> str | None:
    """The Soak section of the file at `path`, if any."""
    return find_section(path, HEADING)


def write_section(path: Path, kept: str | None) -> None:
    """The Soak section at the end of the file (this run's, else `kept`)."""
    put_section(path, HEADING, _last_section, kept)
