"""FAULTS: faults injected into a running service under load; what each answer waited, and
whether anything acknowledged was lost.

Each scenario runs gunicorn as ``rls-cds serve --prod`` runs it (demo mode, 2 workers of 4
threads) and the soak's load (benchmarks.soak.drive: the shipped example hooks, feedback on
every card, every tenth post sent twice), injects one fault while the load runs, and
reports the load, the slowest hook and feedback answer, the answers by status, and the
feedback acknowledged (sum of ``stored`` over 2xx answers) against the rows stored, read
from the store after the run. The private PostgreSQL and Redis are started by the suite on
free ports (tests/private_postgres.py, tests/private_redis.py), never the machine's own.

- **frozen-postgres**: the store is a private PostgreSQL; SIGSTOP to it and every backend
  for ``freeze_s``, then SIGCONT. Bounds: a hook 2.5 s (its deadline; the suppression read
  gives up after 0.5 s), a feedback POST 5 s (then 503).
- **redis**: the feedback quota lives in a private Redis (``RLS_CDS_REDIS_URL``); it is
  paused (SIGSTOP) for ``freeze_s``, resumed, then killed and restarted empty. Bound: a
  Redis command 1 s (then feedback 503); hooks do not use Redis in demo mode.
- **dripping-fhir**: hooks without prefetch, half against a FHIR server that drips its
  headers a byte every 0.2 s (tests/hardening/fhir_faults.py), half against a healthy one.
  Bound: the hook deadline (2.5 s); the healthy hooks must keep their cards.
- **sigterm**: SIGTERM to gunicorn's arbiter mid-load: workers finish their calls and
  write the issued cards still queued. Cards returned vs recorded must be equal.
- **kill-9**: SIGKILL to one worker mid-load; gunicorn starts another. What may be lost is
  the killed worker's queue of issued cards (bounded, README); never acknowledged feedback.

``python -m benchmarks --only FAULTS`` writes the "Faults" section of BENCHMARKS.md.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import soak
from benchmarks.report import Result, machine
from benchmarks.server import Server, gunicorn
from benchmarks.soak import Tally, drive, settled_count
from tests import builders as b
from tests.hardening.fhir_faults import faulty_fhir
from tests.hardening.test_fhir_faults import RECORD
from tests.private_postgres import private_postgres
from tests.private_redis import private_redis

HEADING = "## Faults"
HOOK_DEADLINE_S = 2.5
SUPPRESSION_BUDGET_S = 0.5
STORE_TIMEOUT_S = 5.0
REDIS_COMMAND_S = 1.0
#: Slack on every bound: a 2-core machine shared by the load generator and the server.
SLACK_S = 1.0
SECRET = "faults-patient-key-secret"
_last_section: list[str] = []


@dataclass
class Outcome:
    """One scenario's figures; `bounds` maps a kind ("hook", "feedback") to its bound."""

    name: str
    fault: str
    tally: Tally
    seconds: float
    bounds: dict[str, float]
    stored: int | None = None  # feedback rows in the store after the run
    recorded: int | None = None  # issued-card rows after the run
    must_record_all: bool = False
    healthy: tuple[int, int] | None = None  # healthy hooks with cards, of all healthy hooks
    note: str = ""

    def failures(self) -> list[str]:
        found = []
        for kind, bound in self.bounds.items():
            if self.tally.slowest[kind] > bound + SLACK_S:
                found.append(f"slowest {kind} {self.tally.slowest[kind]:.2f} s > {bound} s")
        for kind, statuses in self.tally.kinds.items():
            bad = {s: n for s, n in statuses.items() if s is not None and s >= 500 and s != 503}
            if bad:
                found.append(f"{kind}: {bad}")
        # More stored than acknowledged is allowed: a POST answered 503 at its bound may
        # still land late (a retry then stores nothing twice); fewer is a loss.
        if self.stored is not None and self.stored < self.tally.acknowledged:
            found.append(f"acknowledged {self.tally.acknowledged} > stored {self.stored}")
        if self.must_record_all and self.recorded != self.tally.cards:
            found.append(f"cards returned {self.tally.cards} != recorded {self.recorded}")
        if self.healthy is not None and self.healthy[0] != self.healthy[1]:
            found.append(f"healthy hooks with cards {self.healthy[0]} of {self.healthy[1]}")
        return found


def _statuses(tally: Tally, kind: str) -> str:
    counts = tally.kinds.get(kind, Counter())
    return ", ".join(
        f"{'broken' if s is None else s}: {n}"
        for s, n in sorted(counts.items(), key=lambda item: (item[0] is None, item[0] or 0))
    )


@contextmanager
def _loaded(
    server: Server, seconds: float, stop: threading.Event | None = None
) -> Iterator[tuple[Tally, list[float]]]:
    """The soak's load on `server` in the background for `seconds` (or until `stop`); on
    leaving the block, joined (the tally is complete then) and its duration put in the list."""
    done: list[Tally] = []
    took: list[float] = []

    def run() -> None:
        tally, elapsed = drive(server.port, 10**9, seconds, soak.THREADS, stop=stop)
        done.append(tally)
        took.append(elapsed)

    thread = threading.Thread(target=run, name="faults-load")
    thread.start()
    result = Tally()
    try:
        yield result, took
    finally:
        thread.join()
        (tally,) = done
        result.__dict__.update({k: v for k, v in tally.__dict__.items() if k != "lock"})


def frozen_postgres(seconds: float, freeze_s: float) -> Outcome:
    with private_postgres() as pg:
        env = {"RLS_CDS_DATABASE_URL": pg.url, "RLS_CDS_PATIENT_KEY_SECRET": SECRET}
        with gunicorn(environ=env) as server:
            with _loaded(server, seconds) as (tally, took):
                time.sleep(seconds / 4)
                pg.freeze()
                time.sleep(freeze_s)
                pg.thaw()
            stored = settled_count(pg.url, "feedback", tally.acknowledged, within_s=10)
            recorded = settled_count(pg.url, "issued_card", tally.cards, within_s=20)
    return Outcome(
        "frozen-postgres",
        f"PostgreSQL and every backend SIGSTOPped for {freeze_s:.0f} s",
        tally,
        took[0],
        {"hook": HOOK_DEADLINE_S, "feedback": STORE_TIMEOUT_S},
        stored,
        recorded,
    )


def redis_faults(seconds: float, freeze_s: float) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="rls-cds-faults-") as tmp, private_redis() as cache:
        url = f"sqlite:///{Path(tmp) / 'store.sqlite3'}"
        env = {"RLS_CDS_DATABASE_URL": url, "RLS_CDS_REDIS_URL": cache.url}
        with gunicorn(environ=env) as server:
            with _loaded(server, seconds) as (tally, took):
                time.sleep(seconds / 4)
                cache.pause()
                time.sleep(freeze_s)
                cache.resume()
                time.sleep(seconds / 4)
                cache.restart_empty()
            stored = settled_count(url, "feedback", tally.acknowledged, within_s=10)
            recorded = settled_count(url, "issued_card", tally.cards, within_s=20)
    return Outcome(
        "redis",
        f"Redis (feedback quota) SIGSTOPped for {freeze_s:.0f} s, then restarted empty",
        tally,
        took[0],
        {"hook": HOOK_DEADLINE_S, "feedback": REDIS_COMMAND_S},
        stored,
        recorded,
    )


def dripping_fhir(seconds: float, threads: int = 2) -> Outcome:
    """`threads` clients against a dripping server and as many against a healthy one."""
    tally = Tally()
    healthy = [0, 0]
    with (
        faulty_fhir(RECORD, {t: "drip-headers" for t in _TYPES}) as dripping,
        faulty_fhir(RECORD) as good,
        gunicorn() as server,
    ):
        deadline = time.monotonic() + seconds

        def work(base: str, kind: str) -> None:
            connection = soak.Connection(server.port)
            while time.monotonic() < deadline:
                body = b.hook_request(fhirServer=base) | {"hookInstance": str(uuid.uuid4())}
                del body["prefetch"]
                status, answer, took = connection.post(_HOOK, body)
                with tally.lock:
                    tally.hooks += 1
                    tally.kinds.setdefault(kind, Counter())[status] += 1
                    tally.slowest[kind] = max(tally.slowest[kind], took)
                    if kind == "healthy hook":
                        healthy[1] += 1
                        healthy[0] += bool(status == 200 and answer["cards"])
            connection.close()

        pool = [
            threading.Thread(target=work, args=(base, kind))
            for base, kind in [
                (dripping.base_url, "dripping hook"),
                (good.base_url, "healthy hook"),
            ]
            for _ in range(threads)
        ]
        started = time.monotonic()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        took = time.monotonic() - started
    return Outcome(
        "dripping-fhir",
        f"{threads} clients call a FHIR server dripping its headers (1 byte/0.2 s), "
        f"{threads} a healthy one",
        tally,
        took,
        {"dripping hook": HOOK_DEADLINE_S, "healthy hook": HOOK_DEADLINE_S},
        healthy=(healthy[0], healthy[1]),
    )


_HOOK = "/cds-services/rls-secondary-causes"
_TYPES = (
    "Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement",
    "MedicationAdministration", "ServiceRequest", "Procedure",
)  # fmt: skip


def _stopping(
    name: str, fault: str, seconds: float, strike: Callable[[Server], None], all_cards: bool
) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="rls-cds-faults-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'store.sqlite3'}"
        with gunicorn(environ={"RLS_CDS_DATABASE_URL": url}) as server:
            stop = threading.Event()
            with _loaded(server, seconds, stop if all_cards else None) as (tally, took):
                time.sleep(seconds / 2)
                strike(server)
                stop.set()  # a stopped server: no new calls (those in flight are counted)
            if all_cards:
                server.process.wait(60)
        stored = settled_count(url, "feedback", tally.acknowledged, within_s=5)
        # after a kill -9 the killed worker's queue may never come: wait less for it
        recorded = settled_count(url, "issued_card", tally.cards, within_s=5 if all_cards else 2)
    return Outcome(
        name,
        fault,
        tally,
        took[0],
        {"hook": HOOK_DEADLINE_S, "feedback": STORE_TIMEOUT_S},
        stored,
        recorded,
        must_record_all=all_cards,
    )


def sigterm(seconds: float) -> Outcome:
    def strike(server: Server) -> None:
        server.process.send_signal(signal.SIGTERM)

    return _stopping("sigterm", "SIGTERM to gunicorn mid-load", seconds, strike, True)


def kill_9(seconds: float) -> Outcome:
    def strike(server: Server) -> None:
        os.kill(server.workers()[0], signal.SIGKILL)

    return _stopping("kill-9", "SIGKILL to one worker mid-load", seconds, strike, False)


def run(seconds: float = 40.0, freeze_s: float = 10.0, short_s: float = 20.0) -> list[Result]:
    outcomes = [
        frozen_postgres(seconds, freeze_s),
        redis_faults(seconds, freeze_s),
        dripping_fhir(short_s),
        sigterm(short_s),
        kill_9(short_s),
    ]
    _last_section[:] = section_lines(outcomes)
    return [
        Result(
            f"F{n}",
            f"fault: {o.name}",
            "; ".join(f"{k} {o.tally.slowest[k]:.2f} s" for k in o.bounds),
            "within bounds, nothing acknowledged lost",
            not o.failures(),
            [],
        )
        for n, o in enumerate(outcomes, 1)
    ]


def owns(result: Result) -> bool:
    return result.key.startswith("F") and result.key[1:].isdigit()


def section_lines(outcomes: list[Outcome]) -> list[str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        HEADING,
        "",
        f"Latest run of `python -m benchmarks --only FAULTS` (also part of `make bench`), {when}.",
        "gunicorn as `rls-cds serve --prod` runs it (demo mode, 2 workers of 4 threads) under",
        f"the soak's load ({soak.THREADS} client threads: the shipped example hooks, feedback on",
        "every card); one fault injected mid-load; private PostgreSQL and Redis on free ports.",
        f"Bounds: hook {HOOK_DEADLINE_S} s (deadline), feedback {STORE_TIMEOUT_S} s (store) or",
        f"{REDIS_COMMAND_S} s (Redis command); a figure passes within {SLACK_S:.0f} s of its",
        "bound (2 shared cores). Acknowledged = sum of `stored` over 2xx feedback answers;",
        "stored = rows in the store after the run (may exceed acknowledged: a POST answered",
        "503 at its bound can land late; the load does not retry it). Machine: "
        + "; ".join(machine())
        + ".",
        "",
        "| fault | load | slowest answer (bound) | answers by status | acknowledged vs stored "
        "| cards returned vs recorded | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        slowest = "; ".join(
            f"{k} {o.tally.slowest[k] * 1000:.0f} ms ({v:.1f} s)" for k, v in o.bounds.items()
        )
        statuses = "; ".join(f"{k}: {_statuses(o.tally, k)}" for k in o.tally.kinds)
        acknowledged = "-" if o.stored is None else f"{o.tally.acknowledged} vs {o.stored}"
        if o.healthy is not None:
            acknowledged = f"healthy hooks with cards: {o.healthy[0]} of {o.healthy[1]}"
        recorded = "-" if o.recorded is None else f"{o.tally.cards} vs {o.recorded}"
        verdict = "pass" if not o.failures() else "FAIL: " + "; ".join(o.failures())
        load = (
            f"{o.tally.hooks} hooks, {o.tally.feedback_posts} feedback posts in {o.seconds:.0f} s"
        )
        lines.append(
            f"| {o.fault} | {load} | {slowest} | {statuses} | {acknowledged} | {recorded} "
            f"| {verdict} |"
        )
    return lines


def write_section(path: Path, kept: str | None) -> None:
    soak.put_section(path, HEADING, _last_section, kept)


def section(path: Path) -> str | None:
    return soak.find_section(path, HEADING)
