"""FUZZ: schemathesis against the app for minutes, not the test suite's 25 examples per
operation.

Every operation of /openapi.json gets generated requests for an equal share of the time:
schema-valid ones (positive) and, for the operations that take a body, schema-invalid ones
(negative). FZ: every answer documented and conforming, never a 5xx, every invalid request
refused (the suite's checks, tests/demo/test_openapi.py, plus ``negative_data_rejection``).
FZa, run the same way with ``positive_data_acceptance``: is any schema-valid request
refused? Rules JSON Schema cannot state (the deployment's FHIR allow-list, selections
naming draft orders) are refused with a 400 naming the field; each refusal found is listed
by operation and message. The app runs in demo mode in-process (WSGI), at a fixed time.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from benchmarks.report import Result
from cds_service.app import create_app
from cds_service.settings import Settings
from tests.builders import NOW
from tests.demo.test_openapi import CHECKS, OPERATIONS

BATCH = 50


def _runs() -> list[tuple[str, str, GenerationMode]]:
    positive = [(path, method, GenerationMode.POSITIVE) for path, method in OPERATIONS]
    negative = [(p, m, GenerationMode.NEGATIVE) for p, m in OPERATIONS if m == "POST"]
    return positive + negative


def run(seconds: float = 300.0) -> list[Result]:
    """FZ for two thirds of `seconds`, FZa for the rest."""
    return [
        _fuzz("FZ", "schemathesis: documented answers, no 5xx, invalid refused", seconds * 2 / 3),
        _fuzz("FZa", "schemathesis: schema-valid requests accepted", seconds / 3, accept=True),
    ]


def _fuzz(key: str, what: str, seconds: float, accept: bool = False) -> Result:
    """Each operation and mode for seconds / runs, in batches of BATCH examples."""
    runs = [r for r in _runs() if r[2] is GenerationMode.POSITIVE] if accept else _runs()
    share = seconds / len(runs)
    examples: Counter[str] = Counter()
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="rls-cds-fuzz-") as tmp:
        app = create_app(
            Settings(demo=True, data_dir=Path(tmp), log_level="ERROR"), clock=lambda: NOW
        )
        schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
        started = time.monotonic()
        for path, method, mode in runs:
            name = f"{method} {path} {mode.value}"
            checks = [positive_data_acceptance] if accept else [*CHECKS, negative_data_rejection]
            ends = time.monotonic() + share
            batch = 0
            while time.monotonic() < ends and name not in failures:
                failure = _batch(schema[path][method], mode, checks, batch, examples, name)
                if failure:
                    failures[name] = failure
                batch += 1
        took = time.monotonic() - started
    total = sum(examples.values())
    notes = [
        f"{len(runs)} operation/mode pairs, {share:.0f} s each, {total} requests in all "
        f"({took:.0f} s); per pair: " + ", ".join(f"{k}: {n}" for k, n in examples.items()),
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


def _batch(
    operation: Any,
    mode: GenerationMode,
    checks: list[Any],
    seed: int,
    examples: Counter[str],
    name: str,
) -> str | None:
    """BATCH examples from `seed`; the first line of the failure schemathesis found, if any."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=BATCH,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    def call(case: Any) -> None:
        examples[name] += 1
        case.call_and_validate(checks=checks)

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
