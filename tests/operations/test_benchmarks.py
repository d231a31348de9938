"""Every benchmark suite still runs (tiny counts): a refactor that breaks one fails here,
not months later in `make bench`. The figures of a smoke run mean nothing and are not read.
The suites run as two processes at once (those of the main table; those with their own
section): each mostly waits on the servers it starts, and `make test` has a 10-minute budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import SUITES

ROOT = Path(__file__).resolve().parents[2]
#: One line per measurement of BENCHMARKS.md, from every suite but the soak (its own section).
KEYS = ("P1", "P1c", "P2", "P2s", "P3", "P3n", "P3L", "P4m", "P4s", "P1i", "P3i")
KEYS += ("P3p", "H1", "H1p", "H2")


#: The suites of each smoke process: together, every suite of `python -m benchmarks`.
TABLE = ("P1", "P2", "P3", "H", "INSTR")
SECTIONED = ("SOAK", "FAULTS", "FUZZ")
SMOKE = (sys.executable, "-m", "benchmarks", "--smoke", "--only")


@pytest.mark.slow
def test_every_benchmark_suite_runs_and_renders_its_report(tmp_path):
    assert set(TABLE + SECTIONED) == set(SUITES)
    outs = {group: tmp_path / f"BENCHMARKS-{i}.md" for i, group in enumerate((TABLE, SECTIONED))}
    logs = {group: (tmp_path / f"{out.stem}.log").open("w+") for group, out in outs.items()}
    runs = {  # output to files: a full pipe would stall the run not yet waited for
        group: subprocess.Popen(
            [*SMOKE, ",".join(group), "--out", str(out)],
            cwd=ROOT, stdout=logs[group], stderr=subprocess.STDOUT, text=True,
        )
        for group, out in outs.items()
    }  # fmt: skip
    for group, run in runs.items():
        run.wait(timeout=300)
        logs[group].seek(0)
        assert run.returncode == 0, (group, logs[group].read()[-3000:])
        logs[group].close()
    table, sectioned = (outs[group].read_text("utf-8") for group in (TABLE, SECTIONED))
    for key in KEYS:
        assert f"| {key} " in table, key
    assert "| verdict " in sectioned
    for heading in ("## Soak", "## Faults", "## Fuzz"):
        assert heading in sectioned, heading
    for report in (table, sectioned):  # the real figures are kept
        assert (ROOT / "BENCHMARKS.md").read_text("utf-8") != report
