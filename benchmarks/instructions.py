"""P1i and P3i: instruction counts (valgrind's callgrind), the companions of P1 and P3.

Wall time on a shared machine varies with its load; the number of instructions a call
executes does not (to a fraction of a percent, with PYTHONHASHSEED fixed). Both figures are
ratios within one process, as their wall-clock twins are:

* P1i: one large patient-view (P1's request, through the Flask test client, its issued
  cards written by the recorder) against ``json.loads`` of the same bytes.
* P3i: ``/healthz`` against the small patient-view (P3's request), in-process; as P3, the
  share of /healthz's throughput a CPU-bound hook can reach (healthz / hook).

Method. Python cannot issue callgrind's client requests itself, and running everything
under full instrumentation costs about 50x (the start-up alone, 46 s). So a small C
helper, compiled here against Debian's ``valgrind/callgrind.h`` with the system C
compiler, exposes them to ctypes: the worker (this module with ``--worker``, one process
under ``valgrind --tool=callgrind --instr-atstart=no``) builds the app and warms every
path up uninstrumented, then for each segment switches instrumentation on, zeroes the
counters, makes `count` calls, dumps the counters under the segment's name and switches
off. Each segment's total divided by `count` is its instructions per call; the helper's
own calls add a few hundred instructions per segment, nothing per call. Counted: every
thread of the process (the card recorder's included, flushed inside the segment).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import data
from benchmarks.report import Result

P1I_TARGET = 1.5
P3I_TARGET = 0.5
URL = "/cds-services/rls-secondary-causes"
HELPER = """
#include <valgrind/callgrind.h>
void segment_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void segment_end(const char *name) {
    CALLGRIND_DUMP_STATS_AT(name);
    CALLGRIND_STOP_INSTRUMENTATION;
}
"""
SEGMENTS = ("loads-large", "hook-large", "healthz", "hook-small")


def run(count: int = 10, warm: int = 20) -> list[Result]:
    per_call = measure(count, warm)
    hook, loads = per_call["hook-large"], per_call["loads-large"]
    small, health = per_call["hook-small"], per_call["healthz"]
    p1i, p3i = hook / loads, health / small
    method = [
        "valgrind --tool=callgrind, instrumentation switched on only around the measured",
        f"calls ({count} per segment, after {warm} uninstrumented warm-up calls), through a",
        "small C helper of callgrind's client requests (benchmarks/instructions.py).",
    ]
    return [
        Result(
            "P1i",
            "instructions: large patient-view vs json.loads of the same bytes",
            f"{p1i:.2f}x ({hook / 1e6:.1f} M vs {loads / 1e6:.1f} M)",
            f"<= {P1I_TARGET}x",
            p1i <= P1I_TARGET,
            ["P1's request and app (Flask test client, SQLite store), cards recorded.", *method],
        ),
        Result(
            "P3i",
            "instructions: /healthz vs small patient-view (in-process)",
            f"{p3i:.0%} ({health / 1e6:.2f} M vs {small / 1e6:.2f} M per call)",
            f">= {P3I_TARGET:.0%}",
            p3i >= P3I_TARGET,
            [
                "P3's small request and /healthz through the Flask test client, in one process:",
                "the throughput share a CPU-bound hook can reach, without gunicorn and sockets.",
                *method,
            ],
        ),
    ]


def measure(count: int, warm: int) -> dict[str, float]:
    """Instructions per call of each segment, from one worker under callgrind."""
    valgrind, compiler = shutil.which("valgrind"), shutil.which("cc")
    if valgrind is None or compiler is None:
        raise RuntimeError("instruction counts need valgrind and a C compiler (make prereqs)")
    with tempfile.TemporaryDirectory() as tmp:
        source, helper = Path(tmp, "segments.c"), Path(tmp, "segments.so")
        source.write_text(HELPER)
        subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", helper, source], check=True)
        out = Path(tmp, "callgrind.out")
        env = os.environ | {"PYTHONHASHSEED": "0"}
        subprocess.run(
            [valgrind, "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             sys.executable, "-m", "benchmarks.instructions", "--worker", str(helper),
             str(count), str(warm)],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        totals = _dumps(Path(tmp))
    missing = set(SEGMENTS) - set(totals)
    assert not missing, f"no callgrind dump for {sorted(missing)}"
    return {name: totals[name] / count for name in SEGMENTS}


def _dumps(directory: Path) -> dict[str, int]:
    """Segment name -> instructions, from callgrind's dump files."""
    totals = {}
    for path in directory.glob("callgrind.out*"):
        text = path.read_text("utf-8", errors="replace")
        name = re.search(r"^desc: Trigger: Client Request: (.+)$", text, re.MULTILINE)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
        if name and total:
            totals[name.group(1).strip()] = int(total.group(1))
    return totals


def _worker(helper: str, count: int, warm: int) -> None:
    """Under callgrind: build P1's app uninstrumented, then count each segment."""
    from cds_service.app import create_app
    from cds_service.settings import Settings

    segments = ctypes.CDLL(helper)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(demo=True, log_level="ERROR", data_dir=Path(tmp))
        app = create_app(settings, clock=lambda: data.NOW)
        client = app.test_client()
        recorder = app.extensions["rls_cds"].feedback.recorder
        large, small = data.large_body(), data.small_body()

        def hook(body: bytes) -> Callable[[], None]:
            def call() -> None:
                response = client.post(URL, data=body, content_type="application/json")
                assert response.status_code == 200

            return call

        def healthz() -> None:
            assert client.get("/healthz").status_code == 200

        calls = {
            "loads-large": lambda: json.loads(large),
            "hook-large": hook(large),
            "healthz": healthz,
            "hook-small": hook(small),
        }
        for call in calls.values():
            for _ in range(warm):
                call()
        recorder.flush()
        gc.collect()
        gc.freeze()  # as the production worker does once started
        for name, call in calls.items():
            segments.segment_start()
            for _ in range(count):
                call()
            recorder.flush()
            segments.segment_end(name.encode())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        print("\n".join(f"{r.key}: {r.measured}" for r in run()))
