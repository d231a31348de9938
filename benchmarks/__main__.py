"""``python -m benchmarks [--only P1,P2,P3,H,INSTR,SOAK,FAULTS] [--smoke]``: run, print
the table, write BENCHMARKS.md.

``--smoke`` runs every suite with tiny counts (seconds, not minutes) so that `make test`
proves each benchmark still runs; its figures mean nothing, so it never writes BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import faults, fuzz, gathering, history, inprocess, instructions, server, soak
from benchmarks.report import Result, markdown, table

ROOT = Path(__file__).resolve().parents[1]
SUITES: dict[str, Callable[[], list[Result]]] = {
    "P1": inprocess.run,
    "P2": gathering.run,
    "P3": server.run,
    "H": history.run,
    "INSTR": instructions.run,
    "SOAK": soak.run,
    "FAULTS": faults.run,
    "FUZZ": fuzz.run,
}
#: The smallest counts that still take every code path of each suite.
SMOKE: dict[str, dict[str, Any]] = {
    "P1": {"rounds": 1, "count": 2},
    "P2": {"calls": 2},
    "P3": {"requests": 40, "seconds": 5.0, "threads": 2, "patients": 4, "filled_cards": 200},
    "H": {"hot_cards": 200, "patients": 20, "rounds": 1, "count": 5},
    "INSTR": {"count": 1, "warm": 1},
    "SOAK": {"seconds": 3.0, "pg_seconds": 3.0, "calls": 300},
    "FAULTS": {"seconds": 2.0, "freeze_s": 0.5, "short_s": 1.0},
    "FUZZ": {"seconds": 3.0, "batch": 5},
}
#: Suites that write their own section of the file (kept unless they ran).
SECTIONS = (soak, faults, fuzz)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        help="comma-separated: P1, P2, P3 (P3 includes P4), H, INSTR (P1i, P3i), SOAK, FAULTS, "
        "FUZZ",
    )
    parser.add_argument(
        "--out", type=Path, help="default: BENCHMARKS.md (--smoke: test-output/BENCHMARKS-smoke.md)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny counts: does it still run?")
    args = parser.parse_args()
    if args.out is None:  # a smoke run never overwrites the real figures
        args.out = ROOT / ("test-output/BENCHMARKS-smoke.md" if args.smoke else "BENCHMARKS.md")
        args.out.parent.mkdir(exist_ok=True)
    chosen = args.only.upper().split(",") if args.only else list(SUITES)
    started = time.monotonic()
    kept = [suite.section(args.out) for suite in SECTIONS]  # kept unless their suite ran
    results = []
    for key in chosen:
        print(f"running {key} ...", flush=True)
        results += SUITES[key](**(SMOKE[key] if args.smoke else {}))
    print("\n".join(table(results)))
    timed = [result for result in results if not any(s.owns(result) for s in SECTIONS)]
    if timed:
        args.out.write_text(markdown(timed, time.monotonic() - started), encoding="utf-8")
    for suite, old in zip(SECTIONS, kept, strict=True):
        suite.write_section(args.out, old)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
