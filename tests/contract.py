"""The card contract as published in docs/card-topics.md: the one place tests take topic codes.

The README's topic table is generated from the contract's table. Run
``python -m tests.contract --write`` (or ``make docs``) after editing the contract; the test
``tests/test_contract.py`` fails while the two differ.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "card-topics.md"
README = ROOT / "README.md"
README_BEGIN = "<!-- topics:begin (generated from docs/card-topics.md by `make docs`) -->"
README_END = "<!-- topics:end -->"
_ROW = re.compile(r"^\| (\d+) \| `([a-z0-9-]+)` \| (.+?) \| (.+?) \| (.+?) \| (.+?) \|$", re.M)


@dataclass(frozen=True)
class Topic:
    """One row of the contract's topic table."""

    order: int
    code: str
    display: str
    fires_when: str
    card: str
    suggestions: str


def topics(text: str | None = None) -> tuple[Topic, ...]:
    """The contract's topics, in the order the table lists them."""
    text = CONTRACT.read_text("utf-8") if text is None else text
    return tuple(
        Topic(int(order), code, display, fires, card, suggestions)
        for order, code, display, fires, card, suggestions in _ROW.findall(text)
    )


#: The released topic codes, in contract order.
TOPIC_CODES: tuple[str, ...] = tuple(topic.code for topic in topics())


def readme_table(rows: tuple[Topic, ...] | None = None) -> str:
    """The README's topic table (with its markers), rendered from the contract."""
    rows = topics() if rows is None else rows
    lines = [
        README_BEGIN,
        "| topic | fires when (patient has active RLS and ...) | card |",
        "|---|---|---|",
        *(f"| `{row.code}` | {row.fires_when} | {row.card} |" for row in rows),
        README_END,
    ]
    return "\n".join(lines)


def readme_block(readme: str) -> str:
    """The README's current topic table, markers included ("" when the markers are missing)."""
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    if start < 0 or end < start:
        return ""
    return readme[start : end + len(README_END)]


def write_readme() -> bool:
    """Rewrite the README's topic table from the contract; True when something changed."""
    readme = README.read_text("utf-8")
    current = readme_block(readme)
    if not current:
        raise SystemExit(f"{README}: the markers {README_BEGIN!r} ... {README_END!r} are missing")
    updated = readme.replace(current, readme_table())
    if updated != readme:
        README.write_text(updated, "utf-8")
    return updated != readme


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python -m tests.contract --write")
    print("README topic table", "updated" if write_readme() else "already up to date")
