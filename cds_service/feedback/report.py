"""``rls-cds feedback-report``: per topic, cards issued, accepted, overridden, and why.

The JSON form is for scripts: its keys and their order do not change, topics are sorted by
code, and nothing in it depends on when it was made.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from cds_service.feedback.store import TopicReport

TOP_REASONS = 3
FORMATS = ("table", "json", "csv")


def as_data(topics: list[TopicReport], unknown: int, since: datetime | None) -> dict[str, Any]:
    return {
        "since": since.isoformat() if since else None,
        "topics": [
            {
                "topic": t.topic,
                "issued": t.issued,
                "accepted": t.accepted,
                "overridden": t.overridden,
                "override_rate": t.override_rate,
                "top_override_reasons": [
                    {"code": code, "count": count}
                    for code, count in sorted(t.reasons.items(), key=lambda rc: (-rc[1], rc[0]))[
                        :TOP_REASONS
                    ]
                ],
            }
            for t in topics
        ],
        "unknown_card_feedback": unknown,
    }


def render(data: dict[str, Any], form: str) -> str:
    """The report as a table (for people), JSON or CSV (for scripts)."""
    if form == "json":
        return json.dumps(data, indent=2) + "\n"
    rows = [
        [
            t["topic"],
            t["issued"],
            t["accepted"],
            t["overridden"],
            "" if t["override_rate"] is None else f"{t['override_rate']:.0%}",
            "; ".join(f"{r['code']} ({r['count']})" for r in t["top_override_reasons"]),
        ]
        for t in data["topics"]
    ]
    header = ["topic", "issued", "accepted", "overridden", "override rate", "top override reasons"]
    if form == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([h.replace(" ", "_") for h in header])
        writer.writerows(rows)
        writer.writerow(
            ["(unknown card)", "", "", "", "", f"{data['unknown_card_feedback']} items"]
        )
        return out.getvalue()
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    lines.insert(1, "  ".join("-" * width for width in widths))
    since = f" since {data['since']}" if data["since"] else ""
    lines.append(f"\nfeedback on cards this service did not issue{since}: "
                 f"{data['unknown_card_feedback']}")  # fmt: skip
    return "\n".join(lines) + "\n"
