"""``python -m benchmarks [--only P1,P2,P3]``: run, print the table, write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import gathering, inprocess, server, soak
from benchmarks.report import Result, markdown, table

ROOT = Path(__file__).resolve().parents[1]
SUITES: dict[str, Callable[[], list[Result]]] = {
    "P1": inprocess.run,
    "P2": gathering.run,
    "P3": server.run,
    "SOAK": soak.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", help="comma-separated: P1, P2, P3 (P3 includes P4), SOAK")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    chosen = args.only.upper().split(",") if args.only else list(SUITES)
    started = time.monotonic()
    kept = soak.section(args.out)  # the soak writes its own section; kept unless it ran
    results = []
    for key in chosen:
        print(f"running {key} ...", flush=True)
        results += SUITES[key]()
    print("\n".join(table(results)))
    timed = [result for result in results if not soak.owns(result)]
    if timed:
        args.out.write_text(markdown(timed, time.monotonic() - started), encoding="utf-8")
    soak.write_section(args.out, kept)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
