"""How many cards fire, per topic, on the demo patients and on the Synthea corpus with RLS added.

Alert fatigue is measured, not guessed: this runs every demo patient (``fhir_fixtures/patients``)
and every Synthea patient of ``tests/corpus/synthea`` (with an active RLS Condition added)
through the patient-view service over the in-process HTTP path, as ``rls-cds evaluate`` does,
and counts the cards per topic. Synthea's records end in 2020, so they run twice: at the
demo clock (2026-11-28, every lab old) and on the day after each record's latest
Observation (its labs recent).

    python -m benchmarks.alert_counts                       print the table
    python -m benchmarks.alert_counts --write FILE.json     also save the counts
    python -m benchmarks.alert_counts --baseline FILE.json  before/after columns

``benchmarks/alert-counts-before-issue-15.json`` holds the counts of the release before the
alert-fatigue rules of docs/card-topics.md ("Alert fatigue"), for the before/after table.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cds_service.hooks.bundles import hook_request

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fhir_fixtures" / "patients"
SYNTHEA = ROOT / "tests" / "corpus" / "synthea"
DEMO_NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SERVICE = "rls-secondary-causes"
RLS_CODING = {"system": "http://snomed.info/sct", "code": "32914008", "display": "Restless legs"}
CORPORA = ("demo", "synthea@2026-11-28", "synthea@record-time")


def with_rls(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle with an active, confirmed RLS Condition for its patient."""
    patient = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    condition = {
        "resourceType": "Condition",
        "id": f"rls-{patient['id']}",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "code": {"coding": [RLS_CODING]},
        "subject": {"reference": f"Patient/{patient['id']}"},
    }
    return {**bundle, "entry": [*bundle["entry"], {"resource": condition}]}


def record_time(bundle: dict[str, Any]) -> datetime:
    """The day after the bundle's latest Observation."""
    dates = [
        e["resource"]["effectiveDateTime"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation" and "effectiveDateTime" in e["resource"]
    ]
    return datetime.fromisoformat(max(dates)) + timedelta(days=1)


def topics(bundle: dict[str, Any], now: datetime) -> list[str]:
    """The topics of the cards the service answers for the bundle at `now`."""
    from cds_service.cli import _local_app  # the app `rls-cds evaluate` runs

    app = _local_app(now)
    service = app.extensions["rls_cds"].services[SERVICE]
    body = hook_request(service, bundle, hook_instance=str(uuid.uuid4()))
    response = app.test_client().post(f"/cds-services/{SERVICE}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [card["source"]["topic"]["code"] for card in response.get_json()["cards"]]


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text("utf-8"))


def synthea_patients() -> list[Path]:
    return [p for p in sorted(SYNTHEA.glob("*.json")) if "Information" not in p.stem]


def measure() -> dict[str, dict[str, int]]:
    """Cards per topic (and patients, under "patients") for each corpus."""
    counts: dict[str, Counter[str]] = {corpus: Counter() for corpus in CORPORA}
    for path in sorted(DEMO.glob("*.json")):
        counts["demo"].update(topics(_load(path), DEMO_NOW))
        counts["demo"]["patients"] += 1
    for path in synthea_patients():
        bundle = with_rls(_load(path))
        counts["synthea@2026-11-28"].update(topics(bundle, DEMO_NOW))
        counts["synthea@record-time"].update(topics(bundle, record_time(bundle)))
        counts["synthea@2026-11-28"]["patients"] += 1
        counts["synthea@record-time"]["patients"] += 1
    return {corpus: dict(sorted(found.items())) for corpus, found in counts.items()}


def table(now: dict[str, dict[str, int]], before: dict[str, dict[str, int]] | None) -> str:
    """A markdown table: one row per topic, one column (or before/after pair) per corpus."""
    from cds_service.knowledge import Knowledge
    from cds_service.resources import shipped_dir

    order = [*Knowledge.load(shipped_dir("cards")).cards, "patients"]
    header = ["topic"]
    for corpus in CORPORA:
        header += [f"{corpus} before", f"{corpus} after"] if before else [corpus]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    totals = {corpus: [0, 0] for corpus in CORPORA}
    for topic in order:
        row = [f"`{topic}`" if topic != "patients" else "(patients)"]
        for corpus in CORPORA:
            after = now[corpus].get(topic, 0)
            if topic != "patients":
                totals[corpus][1] += after
            if before:
                was = before.get(corpus, {}).get(topic, 0)
                if topic != "patients":
                    totals[corpus][0] += was
                row += [str(was), str(after)]
            else:
                row.append(str(after))
        lines.append("| " + " | ".join(row) + " |")
    total = ["**all cards**"]
    for corpus in CORPORA:
        total += (
            [str(totals[corpus][0]), str(totals[corpus][1])] if before else [str(totals[corpus][1])]
        )
    lines.append("| " + " | ".join(total) + " |")
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alert_counts", description=__doc__)
    parser.add_argument("--write", type=Path, help="save the counts as JSON")
    parser.add_argument("--baseline", type=Path, help="counts saved earlier, shown as 'before'")
    args = parser.parse_args(list(argv) if argv is not None else None)
    found = measure()
    before = json.loads(args.baseline.read_text("utf-8")) if args.baseline else None
    print(table(found, before))
    if args.write:
        args.write.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
