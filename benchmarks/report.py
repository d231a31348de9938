"""Results, the table printed on the terminal, and BENCHMARKS.md with the machine described."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Result:
    """One line of the table: what was measured, against which target, and whether it held."""

    key: str
    what: str
    measured: str
    target: str
    passed: bool | None
    """None for a line shown for contrast, with no target of its own."""
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "FAIL", None: "-"}[self.passed]


def timed(action: Callable[[], object], count: int) -> float:
    """Mean seconds of `action` over `count` back-to-back runs."""
    started = time.perf_counter()
    for _ in range(count):
        action()
    return (time.perf_counter() - started) / count


def median_ratio(
    subject: Callable[[], object],
    reference: Callable[[], object],
    rounds: int,
    count: int,
    settle: Callable[[], object] = lambda: None,
) -> tuple[float, float, float]:
    """Median over `rounds` of (subject time / reference time), the two measured in turn
    within each round so that both see the same machine; also both median times.

    `settle` runs untimed after each subject batch (to finish work the subject left behind).
    """
    ratios, subjects, references = [], [], []
    for _ in range(rounds):
        s = timed(subject, count)
        settle()
        r = timed(reference, count * 2)
        ratios.append(s / r)
        subjects.append(s)
        references.append(r)
    return statistics.median(ratios), statistics.median(subjects), statistics.median(references)


def machine() -> list[str]:
    """CPU model and count, memory, OS and Python: what the figures were measured on."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return [
        f"CPU: {model}, {os.cpu_count()} logical cores "
        f"({len(os.sched_getaffinity(0))} usable by this process)",
        f"Memory: {memory}",
        f"OS: {platform.system()} {platform.release()} ({platform.machine()})",
        f"Python: {sys.version.split()[0]} ({platform.python_implementation()})",
    ]


def table(results: list[Result]) -> list[str]:
    rows = [("", "measurement", "measured", "target", "result")]
    rows += [(r.key, r.what, r.measured, r.target, r.verdict) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def revision() -> str:
    """The commit measured, marked when the working tree differs from it."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "an unknown commit"
    return commit + (" with uncommitted changes" if git("status", "--porcelain") else "")


def markdown(results: list[Result], seconds: float) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Latest run of `make bench` (`python -m benchmarks`), {when}, {seconds:.0f} s, "
        f"code at {revision()}.",
        "Figures are ratios measured in one run on a shared machine: absolute times vary",
        "from run to run, ratios much less. Regenerate with `make bench`.",
        "",
        "## Machine",
        "",
        *[f"- {line}" for line in machine()],
        "",
        "## Results",
        "",
        *table(results),
        "",
        "## How each figure is measured",
        "",
    ]
    for result in results:
        lines.append(f"- **{result.key}** {result.what}: " + " ".join(result.notes))
    failed = [r for r in results if r.passed is False]
    lines += ["", "## Verdict", ""]
    lines.append(
        "All targets pass."
        if not failed
        else "Not met: " + "; ".join(f"{r.key} ({r.measured}, target {r.target})" for r in failed)
    )
    return "\n".join(lines) + "\n"
