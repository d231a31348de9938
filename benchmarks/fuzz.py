"""FUZZ: schemathesis against the app for minutes, not the test suite's 25 examples per
operation.

Every operation of /openapi.json gets generated requests for an equal share of the time:
schema-valid ones (positive) and, for the operations that take a body, schema-invalid ones
(negative). FZ: every answer documented and conforming, never a 5xx, every invalid request
refused (the suite's checks, tests/demo/test_openapi.py, plus ``negative_data_rejection``).
A body over the size limit is refused with 413, which counts as refused.
FZa, run the same way with ``positive_data_acceptance``: is any schema-valid request
refused? The document lists, per operation, the rules JSON Schema cannot state
(``x-rules-beyond-schema``: data the rules need, the deployment's FHIR allow-list,
selections naming draft orders, an outcome no later than its receipt). A refusal for one of
them is accepted only when this module's own reading of the request (an oracle, not the
service's code) finds that rule broken and the answer has the rule's status and names its
field; every other refusal is a failure, listed by operation and message. The app runs in
demo mode in-process (WSGI), at a fixed time.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from benchmarks import soak
from benchmarks.report import Result, machine
from cds_service.app import create_app
from cds_service.hooks.services import OPTIONAL_KEYS
from cds_service.outbound import AllowList
from cds_service.settings import Settings
from tests.builders import NOW
from tests.demo.test_openapi import CHECKS, OPERATIONS

BATCH = 50
HEADING = "## Fuzz"
_last_section: list[str] = []
#: A body over the size limit is refused as too large: a refusal like the others.
REFUSALS = [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]


def _runs() -> list[tuple[str, str, GenerationMode]]:
    positive = [(path, method, GenerationMode.POSITIVE) for path, method in OPERATIONS]
    negative = [(p, m, GenerationMode.NEGATIVE) for p, m in OPERATIONS if m == "POST"]
    return positive + negative


def run(seconds: float = 300.0, batch: int = BATCH) -> list[Result]:
    """FZ for two thirds of `seconds`, FZa for the rest (each pair at least one `batch`)."""
    results = [
        _fuzz(
            "FZ",
            "schemathesis: documented answers, no 5xx, invalid refused",
            seconds * 2 / 3,
            batch,
        ),
        _fuzz("FZa", "schemathesis: schema-valid requests accepted", seconds / 3, batch, True),
    ]
    _last_section[:] = _section_lines(results)
    return results


def owns(result: Result) -> bool:
    return result.key in ("FZ", "FZa")


def _section_lines(results: list[Result]) -> list[str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        HEADING,
        "",
        f"Latest run of `python -m benchmarks --only FUZZ` (also part of `make bench`), {when}.",
        "Machine: " + "; ".join(machine()) + ".",
        "",
        "| key | what | measured | verdict |",
        "|---|---|---|---|",
        *(f"| {r.key} | {r.what} | {r.measured} | {r.verdict} |" for r in results),
        "",
    ]
    return lines + [f"- {r.key}: {note}" for r in results for note in r.notes]


def write_section(path: Path, kept: str | None) -> None:
    soak.put_section(path, HEADING, _last_section, kept)


def section(path: Path) -> str | None:
    return soak.find_section(path, HEADING)


def _fuzz(key: str, what: str, seconds: float, size: int, accept: bool = False) -> Result:
    """Each operation and mode for seconds / runs, in batches of `size` examples."""
    runs = [r for r in _runs() if r[2] is GenerationMode.POSITIVE] if accept else _runs()
    share = seconds / len(runs)
    examples: Counter[str] = Counter()
    failures: dict[str, str] = {}
    ruled: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="rls-cds-fuzz-") as tmp:
        settings_ = Settings(demo=True, data_dir=Path(tmp), log_level="ERROR")
        app = create_app(settings_, clock=lambda: NOW)
        config = SchemathesisConfig.from_dict(
            {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}
        )
        schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=config)
        oracle = _Oracle(app.test_client().get("/cds-services").get_json(), settings_)
        document = app.test_client().get("/openapi.json").get_json()
        started = time.monotonic()
        for path, method, mode in runs:
            name = f"{method} {path} {mode.value}"
            checks = [positive_data_acceptance] if accept else [*CHECKS, negative_data_rejection]
            rules = document["paths"][path][method.lower()].get("x-rules-beyond-schema", [])
            judge = oracle.judge(path, rules) if accept else None
            ends = time.monotonic() + share
            seed = 0
            while time.monotonic() < ends and name not in failures:
                failure = _batch(
                    schema[path][method], mode, checks, seed, (examples, ruled), name, judge, size
                )
                if failure:
                    failures[name] = failure
                seed += 1
        took = time.monotonic() - started
    total = sum(examples.values())
    notes = [
        f"{len(runs)} operation/mode pairs, {share:.0f} s each, {total} requests in all "
        f"({took:.0f} s); per pair: " + ", ".join(f"{k}: {n}" for k, n in examples.items()),
        *([f"refused by a rule beyond the schema, as documented: {dict(ruled)}"] if accept else []),
        *(f"found, {name}: {failure}" for name, failure in failures.items()),
    ]
    return Result(
        key,
        what,
        f"{total} requests in {took:.0f} s, {len(failures)} failures",
        "0 failures",
        not failures,
        notes,
    )


#: A judge of one operation: the documented rule (its field) a request broke and its answer
#: shows, if any.
Judge = Callable[[Any, Any], str | None]


class _Oracle:
    """This module's own reading of the rules beyond the schema: which a request breaks."""

    def __init__(self, discovery: Mapping[str, Any], settings: Settings) -> None:
        self._prefetch = {
            f"/cds-services/{s['id']}": set(s.get("prefetch", {})) - set(OPTIONAL_KEYS)
            for s in discovery["services"]
        }
        self._allowed = AllowList.of(settings.effective_fhir_allowlist)
        self._latest = NOW + timedelta(seconds=settings.feedback_clock_skew_s)

    def judge(self, path: str, rules: list[dict[str, Any]]) -> Judge:
        """The operation's judge: a refusal passes when its rule is broken and named."""
        tests: dict[str, Callable[[Any], bool]] = {
            "prefetch": lambda body: self._lacks_prefetch(path, body),
            "fhirServer": self._server_refused,
            "context.selections": _selection_unmatched,
            "outcomeTimestamp": self._outcome_late,
        }
        unknown = {rule["field"] for rule in rules} - set(tests)
        assert not unknown, f"no oracle for the documented rules {unknown}"

        def judged(case: Any, response: Any) -> str | None:
            body = case.body if isinstance(case.body, dict) else {}
            for rule in rules:
                if response.status_code == rule["status"] and tests[rule["field"]](body):
                    named = str(response.json().get("details", ""))
                    if rule["field"].split(".")[-1] in named or rule["status"] == 412:
                        return str(rule["field"])
            return None

        return judged

    def _lacks_prefetch(self, path: str, body: dict[str, Any]) -> bool:
        prefetch = body.get("prefetch") or {}
        return any(prefetch.get(key) is None for key in self._prefetch.get(path, ()))

    def _server_refused(self, body: dict[str, Any]) -> bool:
        server = body.get("fhirServer")
        return isinstance(server, str) and not self._allowed.allows(server)

    def _outcome_late(self, body: dict[str, Any]) -> bool:
        for item in body.get("feedback") or []:
            stamp = item.get("outcomeTimestamp") if isinstance(item, dict) else None
            try:
                if isinstance(stamp, str) and datetime.fromisoformat(stamp) > self._latest:
                    return True
            except (ValueError, TypeError):  # naive or unreadable: not this rule's
                continue
        return False


def _selection_unmatched(body: dict[str, Any]) -> bool:
    """A selection naming no draft order by Type/id or the entry's fullUrl."""
    context = body.get("context") or {}
    named: set[str] = set()
    for entry in (context.get("draftOrders") or {}).get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            named.add(f"{resource.get('resourceType')}/{resource.get('id')}")
            named.add(str(entry.get("fullUrl")))
    return any(selection not in named for selection in context.get("selections") or [])


def _batch(
    operation: Any,
    mode: GenerationMode,
    checks: list[Any],
    seed: int,
    counts: tuple[Counter[str], Counter[str]],
    name: str,
    judge: Judge | None,
    size: int,
) -> str | None:
    """`size` examples from `seed`; the first line of the failure schemathesis found, if any
    (a refusal `judge` finds documented and deserved is counted, not checked)."""
    examples, ruled = counts

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=size,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    def call(case: Any) -> None:
        examples[name] += 1
        response = case.call()
        if judge is not None and (rule := judge(case, response)):
            ruled[rule] += 1
            return
        case.validate_response(response, checks=checks)

    call._hypothesis_internal_use_seed = seed  # type: ignore[attr-defined]
    try:
        call()
    except (Exception, BaseExceptionGroup) as found:  # schemathesis' FailureGroup: reported
        return _first_line(found)
    return None


def _first_line(found: BaseException) -> str:
    """What failed, in one line: the check's title and the answer's status and message."""
    lines = [line.strip() for line in str(found).splitlines() if line.strip()]
    titled = [line for line in lines if line.startswith("- ")]
    answer = [line for line in lines if line.startswith("`{")]
    return " ".join([*(titled[:1] or lines[:1]), *answer[:1]])[:300] or type(found).__name__
