"""The alert-fatigue measure (benchmarks/alert_counts.py) runs, and the revised rules of
docs/card-topics.md ("Alert fatigue") fire fewer kidney cards than the baseline did."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import alert_counts

BASELINE = Path(alert_counts.__file__).parent / "alert-counts-before-issue-15.json"


def test_measure_counts_every_corpus_and_renal_function_due_fell():
    found = alert_counts.measure()
    before = json.loads(BASELINE.read_text("utf-8"))
    assert set(found) == set(alert_counts.CORPORA)
    assert found["demo"]["patients"] == 19
    assert found["synthea@2026-11-28"]["patients"] == 4
    synthea = "synthea@2026-11-28"
    assert found[synthea].get("renal-function-due", 0) < before[synthea]["renal-function-due"]
    assert found["demo"].get("iron-studies-due", 0) < before["demo"]["iron-studies-due"]
    table = alert_counts.table(found, before)
    assert "`kidney-disease`" in table and "**all cards**" in table
