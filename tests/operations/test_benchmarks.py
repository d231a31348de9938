"""Every benchmark suite still runs (tiny counts): a refactor that breaks one fails here,
not months later in `make bench`. The figures of a smoke run mean nothing and are not read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: One line per measurement of BENCHMARKS.md, from every suite but the soak (its own section).
KEYS = ("P1", "P1c", "P2", "P2s", "P3", "P3n", "P3L", "P4m", "P4s", "P1i", "P3i")
KEYS += ("P3p", "H1", "H1p", "H2")


@pytest.mark.slow
def test_every_benchmark_suite_runs_and_renders_its_report(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = out.read_text("utf-8")
    for key in KEYS:
        assert f"| {key} " in report, key
    assert "## Soak" in report and "| verdict " in report
    assert (ROOT / "BENCHMARKS.md").read_text("utf-8") != report  # the real figures are kept
